// Measures (a) core clock via a chain of dependent 1-cycle integer adds,
// (b) AVX2 FMA throughput with 12 independent ymm accumulators (vfmadd231ps).
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <immintrin.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static double clk(long iters){ // each iteration: 20 dependent adds (1 cycle latency each) + loop overhead on separate chain
  long x=0, one=1; double t0=now();
  for(long i=0;i<iters;i++){
    __asm__ volatile(
      "add %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\t"
      "add %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\t"
      "add %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\t"
      "add %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\t" : "+r"(x) : "r"(one));
  }
  double t=now()-t0; return iters*20.0/t/1e9; // GHz
}
static double fma256(long iters){
  __m256 a0=_mm256_set1_ps(1.0f),a1=a0,a2=a0,a3=a0,a4=a0,a5=a0,a6=a0,a7=a0,a8=a0,a9=a0,a10=a0,a11=a0;
  __m256 b=_mm256_set1_ps(0.999999f), c=_mm256_set1_ps(1e-7f);
  double t0=now();
  for(long i=0;i<iters;i++){
    __asm__ volatile(
     "vfmadd231ps %[b],%[c],%[a0]\n\tvfmadd231ps %[b],%[c],%[a1]\n\tvfmadd231ps %[b],%[c],%[a2]\n\tvfmadd231ps %[b],%[c],%[a3]\n\t"
     "vfmadd231ps %[b],%[c],%[a4]\n\tvfmadd231ps %[b],%[c],%[a5]\n\tvfmadd231ps %[b],%[c],%[a6]\n\tvfmadd231ps %[b],%[c],%[a7]\n\t"
     "vfmadd231ps %[b],%[c],%[a8]\n\tvfmadd231ps %[b],%[c],%[a9]\n\tvfmadd231ps %[b],%[c],%[a10]\n\tvfmadd231ps %[b],%[c],%[a11]\n\t"
     : [a0]"+v"(a0),[a1]"+v"(a1),[a2]"+v"(a2),[a3]"+v"(a3),[a4]"+v"(a4),[a5]"+v"(a5),[a6]"+v"(a6),[a7]"+v"(a7),
       [a8]"+v"(a8),[a9]"+v"(a9),[a10]"+v"(a10),[a11]"+v"(a11)
     : [b]"v"(b),[c]"v"(c));
  }
  double t=now()-t0;
  float tmp[8]; _mm256_storeu_ps(tmp,_mm256_add_ps(a0,a11)); volatile float sink=tmp[0]; (void)sink;
  return iters*12.0*8*2/t/1e9; // GFLOP/s
}
int main(int argc,char**argv){
  int reps=argc>1?atoi(argv[1]):7;
  for(int r=0;r<reps;r++){
    double g=clk(100000000L);
    double f=fma256(50000000L);
    printf("clock_GHz=%.3f fma256_GFLOPs=%.1f  FMA_instr_per_cycle=%.2f\n",g,f,f/(g*16.0));
    fflush(stdout);
  }
}
