// CSV parsing: label column by name, features in header order, classes = max label + 1, and every
// error naming the file, line and column.
using DistTrain.Data.Sources;
using Xunit;

namespace DistTrain.Data.Tests;

public class CsvReaderTests
{
    static DataException Fails(string text, string label = "label", int? classes = null)
    {
        using var dir = new TempDir();
        var path = dir.File("data.csv");
        File.WriteAllText(path, text);
        var e = Assert.Throws<DataException>(() => CsvReader.Load(path, label, classes));
        Assert.Contains(path, e.Message);
        return e;
    }

    [Fact]
    public void ReadsFeaturesInHeaderOrderWithLabelAnywhere()
    {
        using var dir = new TempDir();
        var path = dir.File("d.csv");
        File.WriteAllText(path, "x, y ,class,z\n1.5,-2,2,1e-3\n\n 0 ,\"4\",0,7\n");
        var ds = CsvReader.Load(path, "class");
        Assert.Equal([3], ds.SampleShape);
        Assert.Equal([1.5f, -2f, 1e-3f, 0f, 4f, 7f], ds.Features);
        Assert.Equal([2, 0], ds.Labels);
        Assert.Equal(3, ds.Classes);
        Assert.Equal("d", ds.Name);
    }

    [Fact]
    public void DefaultLabelColumnAndIntegralFloatLabels()
    {
        var ds = CsvReader.Parse(new StringReader("a,label\n0.25,1.0\n0.5,4\n"), "mem");
        Assert.Equal([1, 4], ds.Labels);
        Assert.Equal(5, ds.Classes);
        Assert.Equal([0.25f, 0.5f], ds.Features);
    }

    [Fact]
    public void MissingLabelColumnListsTheHeader()
    {
        var e = Fails("a,b,c\n1,2,3\n", label: "target");
        Assert.Contains(":1", e.Message);
        Assert.Contains("'target'", e.Message);
        Assert.Contains("a, b, c", e.Message);
        Assert.Contains("label=COLUMN", e.Message);
    }

    [Fact]
    public void NonNumericFeatureNamesLineAndColumn()
    {
        var e = Fails("a,b,label\n1,2,0\n3,red,1\n");
        Assert.Equal(3, e.Line);
        Assert.Equal("b", e.Column);
        Assert.Contains("data.csv:3 (column 2 'b')", e.Message);
        Assert.Equal(2, e.ColumnNumber);
        Assert.Contains("'red'", e.Message);
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("1.5")]
    [InlineData("cat")]
    public void BadLabelIsAnError(string label)
    {
        var e = Fails($"a,label\n1,0\n2,{label}\n");
        Assert.Equal(3, e.Line);
        Assert.Equal("label", e.Column);
        Assert.Contains("non-negative integer", e.Message);
    }

    [Fact]
    public void RaggedRowNamesItsLine()
    {
        var e = Fails("a,b,label\n1,2,0\n1,2\n");
        Assert.Equal(3, e.Line);
        Assert.Contains("2 fields where the header has 3", e.Message);
    }

    [Fact]
    public void NonFiniteFeatureIsAnError() => Assert.Equal("a", Fails("a,label\nNaN,0\n").Column);

    [Fact]
    public void LabelBeyondGivenClassCount()
    {
        var e = Fails("a,label\n1,0\n2,3\n", classes: 3);
        Assert.Contains("label 3 is out of range for 3 classes", e.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a,label\n")]
    [InlineData("label\n1\n")]
    [InlineData("a,a,label\n1,2,0\n")]
    public void DegenerateFilesAreErrors(string text) => Fails(text);

    [Fact]
    public void MissingFileIsAnError()
    {
        var e = Assert.Throws<DataException>(() => CsvReader.Load("/nonexistent/dir/x.csv"));
        Assert.Contains("/nonexistent/dir/x.csv", e.Message);
    }

    [Theory]
    [InlineData("a,label\n1,x\n", 2, 2, "label", "not a non-negative integer")]
    [InlineData("\na,label\n1,2\n\n1,2.5\n", 5, 2, "label", "not a non-negative integer")]
    [InlineData("label,a,b\n1,2,3\n0,4,five\n", 3, 3, "b", "'five' is not a finite number")]
    [InlineData("a,b,label\n1,2,0\n\"x\",2,0\n", 3, 1, "a", "'x' is not a finite number")]
    public void EveryBadCellNamesItsLineAndColumnNumber(string text, int line, int column, string name, string problem)
    {
        var e = Fails(text);
        Assert.Equal(line, e.Line);
        Assert.Equal(column, e.ColumnNumber);
        Assert.Equal(name, e.Column);
        Assert.Contains($"data.csv:{line} (column {column} '{name}')", e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void RaggedRowAfterGoodRowsNamesItsLine()
    {
        var e = Fails("a,b,label\n1,2,0\n1,2,0\n1,2,0,9\n");
        Assert.Equal(4, e.Line);
        Assert.Contains("data.csv:4", e.Message);
        Assert.Contains("4 fields where the header has 3", e.Message);
    }

    [Fact]
    public void TableWithoutLabelColumnReadsFeaturesOnly()
    {
        using var dir = new TempDir();
        var path = dir.File("x.csv");
        File.WriteAllText(path, "a,b\n1,2\n3,4.5\n");
        var t = CsvReader.ReadTable(path);
        Assert.Equal(["a", "b"], t.FeatureNames);
        Assert.Equal([1f, 2f, 3f, 4.5f], t.Features);
        Assert.Null(t.Labels);
        Assert.Equal(2, t.Rows);
        File.WriteAllText(path, "a,label,b\n1,0,2\n3,1,4.5\n");
        Assert.Equal([0, 1], CsvReader.ReadTable(path).Labels!);
    }
}
