// Compute.Threads, Simd.Force and Conv2d.Winograd are process-wide settings, and most classes here set them: run
// the classes one at a time, or a steady-state allocation test can see another class switch the thread count or the
// path between its warm-up and its measured calls, and count the new per-thread scratch slot as an allocation.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
