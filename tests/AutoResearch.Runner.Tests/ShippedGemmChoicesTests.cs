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
}
