// Tests that change process-wide settings (Compute.Threads) or measure allocations run alone.
using Xunit;

namespace DistTrain.Nn.Tests;

[CollectionDefinition("Serial", DisableParallelization = true)]
public sealed class SerialCollection;
