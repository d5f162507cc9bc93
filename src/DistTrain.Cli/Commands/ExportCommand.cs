// `disttrain export --checkpoint F --onnx FILE`: writes a trained model as ONNX (opset 17) for ONNX Runtime
// and other tools: input "input" (batch, ...), output "output" (the raw outputs, logits for a classifier).
using System.CommandLine;
using DistTrain.Cli.Evaluation;
using DistTrain.Cli.Export;
using DistTrain.Cli.Training;
using DistTrain.Tensors;

namespace DistTrain.Cli.Commands;

public sealed class ExportCommand : ICommandFactory
{
    public string? Parent => null;

    public Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint", "-c") { Description = "A model.safetensors written by `disttrain train` (or its run folder).", Required = true };
        var onnx = new Option<string>("--onnx") { Description = "The ONNX file to write.", Required = true };
        var cmd = new Command("export", "Export a trained model as ONNX.") { checkpoint, onnx };
        cmd.SetAction(r => CliErrors.Guard(() =>
        {
            var m = CheckpointModel.Load(r.GetValue(checkpoint)!);
            var path = r.GetValue(onnx)!;
            var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            if (!Directory.Exists(dir)) throw new ArgumentException($"--onnx {path}: folder {dir} does not exist.");
            OnnxExport.Write(m.Model, path, m.Spec.Name);
            Console.WriteLine($"{path}: {m.Spec.Name}, input \"input\" (batch,{string.Join(",", m.Spec.Input)}), output \"output\" {Tensor.ShapeString([0, .. m.Spec.Output]).Replace("(0,", "(batch,")}, " +
                              $"ONNX opset {OnnxExport.Opset}, {new FileInfo(path).Length:N0} bytes");
            return 0;
        }));
        return cmd;
    }
}
