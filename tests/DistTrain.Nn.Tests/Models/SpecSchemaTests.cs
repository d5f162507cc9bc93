// docs/model-spec.schema.json, the JSON Schema of the spec format documented in docs/models.md: every preset
// (and a fitted, standardized one) validates against it, it rejects what the parser rejects, and its layer
// types, fields, required fields and aliases are exactly those of LayerKinds.
using System.Text.Json;
using System.Text.Json.Nodes;
using DistTrain.Nn.Models;
using Json.Schema;
using Xunit;

namespace DistTrain.Nn.Tests.Models;

public class SpecSchemaTests
{
    private static readonly string SchemaPath = FindUp(Path.Combine("docs", "model-spec.schema.json"));

    private static string FindUp(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, relative))) return Path.Combine(dir.FullName, relative);
        throw new FileNotFoundException($"{relative} not found above {AppContext.BaseDirectory}");
    }

    private static readonly JsonSchema Schema = JsonSchema.FromText(File.ReadAllText(SchemaPath));

    private static EvaluationResults Check(string json) =>
        Schema.Evaluate(JsonDocument.Parse(json).RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });

    private static string Errors(EvaluationResults r) =>
        string.Join("; ", (r.Details ?? []).Where(d => d.Errors is not null).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}")));

    [Fact]
    public void Every_preset_validates()
    {
        Assert.NotEmpty(Presets.Names);
        foreach (var name in Presets.Names)
        {
            var r = Check(Presets.Json(name));
            Assert.True(r.IsValid, $"preset {name}: {Errors(r)}");
        }
        var fitted = Presets.Spec("mlp").FitData([3], 2).WithStandardize([0.5f, 1e3f, -2f], [1f, 250f, 0.01f]);
        Assert.True(Check(fitted.CanonicalJson).IsValid, Errors(Check(fitted.CanonicalJson)));
    }

    [Theory]
    [InlineData("""{"input":[4],"layers":[{"type":"dense","outt":3}]}""")]
    [InlineData("""{"input":[4],"layers":[{"type":"dense"}]}""")]
    [InlineData("""{"input":[4],"layers":[{"type":"convv","out":3}]}""")]
    [InlineData("""{"input":[4],"loss":"hinge","layers":[{"type":"dense","out":3}]}""")]
    [InlineData("""{"input":[4],"layers":[{"type":"dropout","p":1.5}]}""")]
    [InlineData("""{"input":[0],"layers":[{"type":"dense","out":3}]}""")]
    [InlineData("""{"input":[4],"layers":[{"type":"dense","out":3,"name":"a.b"}]}""")]
    [InlineData("""{"input":[4],"layers":[{"type":"dense","out":3,"name":"12"}]}""")]
    [InlineData("""{"input":[4],"layers":[]}""")]
    [InlineData("""{"input":[4],"layer":[{"type":"dense","out":3}]}""")]
    [InlineData("""{"input":[2],"standardize":{"mean":[0,0],"std":[1,0]},"layers":[{"type":"dense","out":3}]}""")]
    public void Rejects_what_the_parser_rejects(string json)
    {
        Assert.Throws<ModelSpecException>(() => ModelSpec.Parse(json));
        Assert.False(Check(json).IsValid);
    }

    [Fact]
    public void Layer_types_fields_and_aliases_match_the_parser()
    {
        var schema = JsonNode.Parse(File.ReadAllText(SchemaPath))!;
        var branches = schema["$defs"]!["layer"]!["allOf"]!.AsArray();
        var kinds = LayerKinds.Catalog().ToList();
        Assert.Equal(kinds.Count, branches.Count);
        foreach (var (type, fields, required, aliases) in kinds)
        {
            var branch = branches.Single(b => b!["if"]!["properties"]!["type"]!["enum"]!.AsArray().Select(t => (string)t!).Contains(type))!;
            var names = branch["if"]!["properties"]!["type"]!["enum"]!.AsArray().Select(t => (string)t!).ToHashSet();
            Assert.True(names.SetEquals(aliases.Append(type)), $"{type}: schema names {string.Join(",", names)}");
            var props = branch["then"]!["properties"]!.AsObject().Select(p => p.Key).Where(k => k is not ("type" or "name")).ToHashSet();
            Assert.True(props.SetEquals(fields), $"{type}: schema fields {string.Join(",", props)}, parser {string.Join(",", fields)}");
            var req = branch["then"]!["required"]!.AsArray().Select(t => (string)t!).Where(k => k != "type").ToHashSet();
            Assert.True(req.SetEquals(required), $"{type}: schema requires {string.Join(",", req)}, parser {string.Join(",", required)}");
        }
    }
}
