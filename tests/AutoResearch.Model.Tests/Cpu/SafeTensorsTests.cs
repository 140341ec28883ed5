using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using AutoResearch.Model.Checkpoint;
using Xunit;

namespace AutoResearch.Model.Tests.Cpu;

public class SafeTensorsTests
{
    private static string TempFile() => Path.Combine(Path.GetTempPath(), $"autoresearch-st-{Guid.NewGuid():N}.safetensors");

    [Fact]
    public void Round_trip_keeps_names_shapes_and_values_with_bf16_rounding_where_asked()
    {
        var path = TempFile();
        var r = new Random(9);
        var a = Enumerable.Range(0, 6).Select(_ => (float)r.NextDouble()).ToArray();
        var b = Enumerable.Range(0, 4).Select(_ => (float)r.NextDouble()).ToArray();
        SafeTensors.Write(path, [new SafeTensor("a", "F32", [2, 3], a), new SafeTensor("b.weight", "BF16", [4], b)]);
        var read = SafeTensors.Read(path);
        Assert.Equal(a, read["a"].Values);
        Assert.Equal([2L, 3L], read["a"].Shape);
        Assert.Equal(b.Select(AutoResearch.Native.Bf16.Round).ToArray(), read["b.weight"].Values);
        File.Delete(path);
    }

    [Fact]
    public void Header_is_the_safetensors_layout_byte_for_byte()
    {
        var path = TempFile();
        SafeTensors.Write(path, [new SafeTensor("x", "F32", [2], [1f, -2f])]);
        var bytes = File.ReadAllBytes(path);
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, n % 8);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, (int)n))!;
        Assert.Equal("F32", header["x"]!["dtype"]!.GetValue<string>());
        Assert.Equal(0, header["x"]!["data_offsets"]![0]!.GetValue<long>());
        Assert.Equal(8, header["x"]!["data_offsets"]![1]!.GetValue<long>());
        Assert.Equal(8 + n + 8, bytes.Length);
        Assert.Equal(1f, BitConverter.ToSingle(bytes, (int)(8 + n)));
        Assert.Equal(-2f, BitConverter.ToSingle(bytes, (int)(8 + n + 4)));
        File.Delete(path);
    }

    [Fact]
    public void Truncated_file_names_the_file_and_the_tensor()
    {
        var path = TempFile();
        SafeTensors.Write(path, [new SafeTensor("weights", "F32", [100], new float[100])]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^16]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Read(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("weights", e.Message, StringComparison.Ordinal);
        File.Delete(path);
    }

    [Fact]
    public void Checkpoint_uses_reference_names_and_shapes_and_loads_back()
    {
        var shape = ModelShape.FromKnobs(2, 64, "SL", 30, 8);
        var model = new AutoResearch.Model.Cpu.CpuGpt(shape);
        model.InitialiseLikeSpec(1);
        var path = TempFile();
        ModelCheckpoint.Save(path, shape, model.Parameters);
        var tensors = SafeTensors.Read(path);
        Assert.Equal("BF16", tensors["transformer.wte.weight"].Dtype);
        Assert.Equal("BF16", tensors["value_embeds.1.weight"].Dtype);
        Assert.Equal("F32", tensors["transformer.h.0.attn.c_q.weight"].Dtype);
        Assert.Equal([2L], tensors["resid_lambdas"].Shape);
        Assert.Equal([512L, 128L], tensors["transformer.h.1.mlp.c_fc.weight"].Shape);
        var inferred = ModelCheckpoint.InferShape(tensors, path, 8, "SL");
        Assert.Equal(shape.ParameterShapes(), inferred.ParameterShapes());
        var loaded = ModelCheckpoint.Load(path, shape);
        Assert.Equal(model.Parameters["x0_lambdas"].Select(v => (double)(float)v), loaded["x0_lambdas"]);
        File.Delete(path);
    }

    [Fact]
    public void Checkpoint_records_every_shape_field_the_knobs_and_the_tokenizer_hash()
    {
        var shape = ModelShape.FromKnobs(3, 64, "SL", 30, 8, headDim: 64, kvHeads: 1, mlpRatio: 3, activation: Activation.SwiGlu, softCap: 0,
            rotaryBase: 500000, shortWindow: 3, valueEmbeds: "V-");
        var model = new AutoResearch.Model.Cpu.CpuGpt(shape);
        model.InitialiseLikeSpec(2);
        var path = TempFile();
        var knobs = new Dictionary<string, string> { ["HeadDim"] = "64", ["Activation"] = "swiglu" };
        ModelCheckpoint.Save(path, shape, model.Parameters, knobs, "ab12");

        var info = ModelCheckpoint.ReadInfo(path);
        var read = info.Shape!;
        Assert.Equal(ModelCheckpoint.ShapeToJson(shape), ModelCheckpoint.ShapeToJson(read));
        Assert.Equal((3, 192, 3, 1, 64), (read.Depth, read.ModelDim, read.Heads, read.KvHeads, read.HeadDim));
        Assert.Equal((shape.MlpHidden, Activation.SwiGlu, 0.0, 500000.0, 30, 8), (read.MlpHidden, read.Activation, read.SoftCap, read.RotaryBase, read.VocabSize, read.SeqLen));
        Assert.Equal([3, 8, 8], read.Windows);
        Assert.Equal([true, false, true], read.HasValueEmbedding);
        Assert.Equal(knobs, info.Knobs);
        Assert.Equal("ab12", info.TokenizerHash);
        Assert.Equal(shape.ParameterShapes(), read.ParameterShapes());
        File.Delete(path);
    }

    [Fact]
    public void Checkpoint_without_metadata_is_read_by_the_baseline_rules()
    {
        var shape = ModelShape.FromKnobs(2, 64, "SL", 30, 8, valueEmbeds: "all");
        var model = new AutoResearch.Model.Cpu.CpuGpt(shape);
        model.InitialiseLikeSpec(3);
        var path = TempFile();
        ModelCheckpoint.Save(path, shape, model.Parameters);
        // What an older train --save wrote: the same tensors, no shape, knobs or tokenizer in the metadata.
        var tensors = SafeTensors.Read(path);
        SafeTensors.Write(path, tensors.Values.ToList(), new Dictionary<string, string> { ["format"] = "pt" });

        var info = ModelCheckpoint.ReadInfo(path);
        Assert.Null(info.Shape);
        Assert.Empty(info.Knobs);
        Assert.Null(info.TokenizerHash);
        var inferred = ModelCheckpoint.InferShape(SafeTensors.Read(path), path, 8, "SL");
        Assert.Equal(ModelCheckpoint.ShapeToJson(shape), ModelCheckpoint.ShapeToJson(inferred));

        // A width that heads of 128 cannot make is named with the head size.
        var narrow = ModelShape.FromKnobs(2, 32, "SL", 30, 8, headDim: 64);
        var narrowModel = new AutoResearch.Model.Cpu.CpuGpt(narrow);
        ModelCheckpoint.Save(path, narrow, narrowModel.Parameters);
        var e = Assert.Throws<InvalidDataException>(() => ModelCheckpoint.InferShape(SafeTensors.Read(path), path, 8, "SL"));
        Assert.Contains("width 64 is not a multiple of the head size 128", e.Message, StringComparison.Ordinal);
        File.Delete(path);
    }

    [Fact]
    public void Checkpoint_with_a_broken_shape_record_names_the_field()
    {
        var path = TempFile();
        SafeTensors.Write(path, [new SafeTensor("resid_lambdas", "F32", [1], [1f])],
            new Dictionary<string, string> { [ModelCheckpoint.ShapeKey] = """{"depth": 1, "model_dim": 128}""" });
        var e = Assert.Throws<InvalidDataException>(() => ModelCheckpoint.ReadInfo(path));
        Assert.Contains("'heads'", e.Message, StringComparison.Ordinal);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        File.Delete(path);
    }
}
