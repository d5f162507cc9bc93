// Assembles a training snapshot from data-plane frames (DESIGN contract 4): the parameters of each key
// range, each optimizer state buffer over each range, and the running-statistics buffers, all of one
// version. The coordinator assembles every shard's ranges for a checkpoint; a PS shard assembles its own
// range when it is restored from one. Frames arrive on receive threads in any order; a frame is staged
// before its checksum is known and counted only once verified. Pure; thread-safe through one lock.
using DistTrain.Training.Steps;
namespace DistTrain.Cluster.Training;

public enum SnapshotPart { Parameters, OptimizerState, Buffers }

public sealed class SnapshotAssembly
{
    private readonly Lock _gate = new();
    private readonly KeyRange[] _ranges;
    private readonly float[][] _values;       // per range
    private readonly float[][][] _states;     // per state buffer, per range
    private readonly bool[] _haveValues;
    private readonly bool[,] _haveStates;
    private bool _haveBuffers;
    private int _missing;

    /// <param name="ranges">The key ranges to collect (their shard numbers are their indices here).</param>
    /// <param name="stateBuffers">Optimizer state buffers per range (Optimizer.State.Count).</param>
    /// <param name="buffersLength">Floats of ParameterStore.Buffers to collect; 0 = none.</param>
    public SnapshotAssembly(long version, KeyRange[] ranges, int stateBuffers, int buffersLength)
    {
        Version = version;
        _ranges = ranges;
        _values = ranges.Select(r => new float[r.Length]).ToArray();
        _states = Enumerable.Range(0, stateBuffers).Select(_ => ranges.Select(r => new float[r.Length]).ToArray()).ToArray();
        _haveValues = new bool[ranges.Length];
        _haveStates = new bool[stateBuffers, ranges.Length];
        Buffers = new float[buffersLength];
        _haveBuffers = buffersLength == 0;
        _missing = ranges.Length * (1 + stateBuffers) + (buffersLength == 0 ? 0 : 1);
    }

    public long Version { get; }
    public float[] Buffers { get; }
    public bool IsComplete { get { lock (_gate) return _missing == 0; } }

    /// <summary>Where a frame's payload goes, or null when it does not belong to this snapshot (wrong version, range or length).</summary>
    public float[]? Stage(SnapshotPart part, long version, int rangeIndex, int stateIndex, long offset, int length)
    {
        if (version != Version) return null;
        if (part == SnapshotPart.Buffers) return length == Buffers.Length && Buffers.Length > 0 ? Buffers : null;
        if ((uint)rangeIndex >= (uint)_ranges.Length || _ranges[rangeIndex].Offset != offset || _ranges[rangeIndex].Length != length) return null;
        if (part == SnapshotPart.Parameters) return _values[rangeIndex];
        return (uint)stateIndex < (uint)_states.Length ? _states[stateIndex][rangeIndex] : null;
    }

    /// <summary>A staged frame verified; returns true when this completed the snapshot.</summary>
    public bool Arrived(SnapshotPart part, int rangeIndex, int stateIndex)
    {
        lock (_gate)
        {
            bool had;
            switch (part)
            {
                case SnapshotPart.Parameters: had = _haveValues[rangeIndex]; _haveValues[rangeIndex] = true; break;
                case SnapshotPart.OptimizerState: had = _haveStates[stateIndex, rangeIndex]; _haveStates[stateIndex, rangeIndex] = true; break;
                default: had = _haveBuffers; _haveBuffers = true; break;
            }
            return !had && --_missing == 0;
        }
    }

    /// <summary>The parameters of every range, joined in key order (ranges tile [0, N) when collecting all shards).</summary>
    public float[] JoinValues() => Join(_values);

    /// <summary>Optimizer state buffer <paramref name="index"/> over every range, joined in key order.</summary>
    public float[] JoinState(int index) => Join(_states[index]);

    /// <summary>The values and state buffers of range <paramref name="rangeIndex"/>.</summary>
    public (float[] Values, float[][] States) RangeOf(int rangeIndex) => (_values[rangeIndex], _states.Select(s => s[rangeIndex]).ToArray());

    private float[] Join(float[][] parts)
    {
        var all = new float[_ranges.Sum(r => r.Length)];
        int o = 0;
        for (int i = 0; i < parts.Length; i++) { parts[i].CopyTo(all, o); o += parts[i].Length; }
        return all;
    }
}
