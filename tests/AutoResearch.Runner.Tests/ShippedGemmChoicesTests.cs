using System.Text.Json.Nodes;
using AutoResearch.Native;
using AutoResearch.Runner.Training;
using Xunit;

namespace AutoResearch.Runner.Tests;

/// <summary>Where `train` looks for GEMM choices shipped with the kernels.</summary>
public class ShippedGemmChoicesTests
{
    [Fact]
    public void The_json_files_of_the_kernels_gemm_choices_folder_are_taken_in_name_order()
    {
        using var folder = new TempFolder();
        Assert.Empty(GpuTrainer.ShippedGemmChoices(folder.Path)); // no such folder: none
        var shipped = Directory.CreateDirectory(Path.Combine(folder.Path, "gemm-choices")).FullName;
        foreach (var name in (string[])["h200.json", "h100.json", "notes.txt"])
            File.WriteAllText(Path.Combine(shipped, name), "{}");
        File.WriteAllText(folder.File("stray.json"), "{}");
        Assert.Equal([Path.Combine(shipped, "h100.json"), Path.Combine(shipped, "h200.json")], GpuTrainer.ShippedGemmChoices(folder.Path));
    }

    [Fact]
    public void Every_file_shipped_beside_the_kernels_is_taken_whole_in_the_context_it_names()
    {
        var files = GpuTrainer.ShippedGemmChoices();
        Assert.NotEmpty(files); // kernels/gemm-choices travels with the binaries
        foreach (var file in files)
        {
            var root = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
            string context = root["context"]!.GetValue<string>();
            int written = root["choices"]!.AsObject().Count;
            Assert.True(written > 0, $"{file}: no choices");
            using var folder = new TempFolder();
            var choices = new GemmChoices(folder.File("gemm-choices.json"), context, [file]);
            Assert.Equal(written, choices.Shipped); // a malformed entry would be dropped without a word at run time
        }
    }

    [Fact]
    public void Doctor_says_which_choices_a_train_on_this_gpu_would_find()
    {
        using var folder = new TempFolder();
        const string H200 = "NVIDIA H200; sm_90; cuBLASLt 130100; 8 candidates", H100 = "NVIDIA H100 80GB HBM3; sm_90; cuBLASLt 130100; 8 candidates";
        var shipped = Directory.CreateDirectory(folder.File("gemm-choices")).FullName;
        var h200 = new GemmChoices(Path.Combine(shipped, "h200.json"), H200);
        h200.Set("a", 1);
        h200.Set("b", 0);
        Assert.True(h200.Save());
        string cache = folder.File("gemm-choices.json");
        string[] files = [Path.Combine(shipped, "h200.json")];

        // A new H100: nothing in its cache, nothing shipped for it; the line names its context and what the first train does.
        string line = GpuTrainer.DescribeGemmChoices(cache, H100, files);
        Assert.StartsWith("none remembered in the cache; none of the 1 shipped file(s) is for this GPU (" + H100 + "): ", line, StringComparison.Ordinal);
        Assert.Contains("first `train` times", line, StringComparison.Ordinal);
        // A new H200: the shipped file, with its shape count.
        Assert.Equal("none remembered in the cache; shipped for this GPU: h200.json (2)", GpuTrainer.DescribeGemmChoices(cache, H200, files));
        // After a run on the H200 its own file counts too; with nothing shipped at all, that is said.
        var own = new GemmChoices(cache, H200);
        own.Set("c", 3);
        Assert.True(own.Save());
        Assert.Equal($"1 shape(s) remembered in {cache}; shipped for this GPU: h200.json (2)", GpuTrainer.DescribeGemmChoices(cache, H200, files));
        Assert.Equal($"1 shape(s) remembered in {cache}; none shipped", GpuTrainer.DescribeGemmChoices(cache, H200, []));
    }
}
