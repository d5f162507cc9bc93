// The one error a checkpoint load or save reports: it names the file and the problem (DESIGN contract 8).
namespace DistTrain.Nn.Checkpoints;

public sealed class CheckpointException : Exception
{
    public CheckpointException(string path, string problem, Exception? inner = null)
        : base($"Checkpoint {path}: {problem}", inner) => (FilePath, Problem) = (path, problem);

    /// <summary>The checkpoint file the problem is in.</summary>
    public string FilePath { get; }
    /// <summary>What is wrong, without the file name.</summary>
    public string Problem { get; }
}
