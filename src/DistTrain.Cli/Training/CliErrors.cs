// Bad input at the command line ends in one clear line on stderr and exit code 2, never a stack trace:
// the exceptions our libraries throw for user mistakes all carry a message that names the thing and the fix.
using DistTrain.Data;
using DistTrain.Nn.Checkpoints;
using DistTrain.Nn.Models;

namespace DistTrain.Cli.Training;

public static class CliErrors
{
    public static int Guard(Func<int> action)
    {
        try { return action(); }
        catch (Exception e) when (e is ArgumentException or ModelSpecException or DataException or CheckpointException
                                      or IOException or UnauthorizedAccessException or InvalidOperationException or FormatException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}
