// Compute.Threads, Simd.Force and Conv2d.Winograd are process-wide settings, and most classes here set them: run
// the classes one at a time, or a steady-state allocation test can see another class switch the thread count or the
// path between its warm-up and its measured calls (a new per-thread scratch slot: 1.1 MB "allocated" by a warm
// Winograd call in one CI run of stop 10, and the stop-8/9 flakes of the same tests).
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
