using Xunit;

namespace AutoResearch.Native.Tests;

/// <summary>The file of GEMM algorithm choices kept between runs: what it keeps, and that a bad or foreign file is a cache miss, not an error.</summary>
public class GemmChoicesTests
{
    private static string NewFolder()
    {
        var folder = Path.Combine(Path.GetTempPath(), "autoresearch-gemm-choices-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        return folder;
    }

    [Fact]
    public void Choices_saved_in_one_context_are_read_back_in_it_and_not_in_another()
    {
        var path = Path.Combine(NewFolder(), "gemm-choices.json");
        var first = new GemmChoices(path, "GPU A; cuBLASLt 1; 8 candidates");
        Assert.Equal(0, first.Loaded);
        Assert.False(first.TryGet("512x512x512 NN", out _));
        first.Set("512x512x512 NN", 3);
        first.Set("8192x512x8192 TN", 0);
        Assert.True(first.Save());
        Assert.Equal([path], Directory.GetFiles(Path.GetDirectoryName(path)!)); // written under a temporary name, then renamed

        var again = new GemmChoices(path, "GPU A; cuBLASLt 1; 8 candidates");
        Assert.Equal(2, again.Loaded);
        Assert.True(again.TryGet("512x512x512 NN", out int index));
        Assert.Equal(3, index);
        Assert.True(again.TryGet("8192x512x8192 TN", out index));
        Assert.Equal(0, index);

        // Another GPU, library or candidate count: none of them hold.
        var other = new GemmChoices(path, "GPU B; cuBLASLt 1; 8 candidates");
        Assert.Equal(0, other.Loaded);
        Assert.False(other.TryGet("512x512x512 NN", out _));
        // Its own choices replace the file's when it saves.
        other.Set("64x64x64 NN", 1);
        Assert.True(other.Save());
        Assert.Equal(0, new GemmChoices(path, "GPU A; cuBLASLt 1; 8 candidates").Loaded);
        Assert.Equal(1, new GemmChoices(path, "GPU B; cuBLASLt 1; 8 candidates").Loaded);
    }

    [Fact]
    public void Shipped_choices_fill_only_the_shapes_the_cache_lacks_and_only_in_their_own_context()
    {
        var folder = NewFolder();
        var cache = Path.Combine(folder, "gemm-choices.json");
        var h200 = Path.Combine(folder, "h200.json");
        var h100 = Path.Combine(folder, "h100.json");
        var broken = Path.Combine(folder, "broken.json");
        var shipped = new GemmChoices(h200, "H200; cuBLASLt 1; 8 candidates");
        shipped.Set("a", 1);
        shipped.Set("b", 2);
        Assert.True(shipped.Save());
        var other = new GemmChoices(h100, "H100; cuBLASLt 1; 8 candidates");
        other.Set("c", 3);
        Assert.True(other.Save());
        File.WriteAllText(broken, "{ not json");

        // A new machine: nothing in its cache, the H200's shipped choices taken, the H100's and the broken file's not.
        var fresh = new GemmChoices(cache, "H200; cuBLASLt 1; 8 candidates", [broken, h100, h200]);
        Assert.Equal(0, fresh.Loaded);
        Assert.Equal(2, fresh.Shipped);
        Assert.True(fresh.TryGet("b", out int index));
        Assert.Equal(2, index);
        Assert.False(fresh.TryGet("c", out _));
        Assert.True(fresh.Save()); // nothing new chosen: nothing written
        Assert.False(File.Exists(cache));

        // The machine's own choice wins over the shipped one; the shipped one fills the rest.
        fresh.Set("a", 5);
        Assert.True(fresh.Save());
        var later = new GemmChoices(cache, "H200; cuBLASLt 1; 8 candidates", [h200]);
        Assert.True(later.TryGet("a", out index));
        Assert.Equal(5, index);
        Assert.Equal(2, later.Loaded); // a and b were saved with it
        Assert.Equal(0, later.Shipped);
        // Another cuBLASLt version: neither the cache's nor the shipped choices hold.
        var upgraded = new GemmChoices(cache, "H200; cuBLASLt 2; 8 candidates", [h200]);
        Assert.Equal(0, upgraded.Loaded + upgraded.Shipped);
    }

    [Theory]
    [InlineData("")]
    [InlineData("{ not json")]
    [InlineData("[1, 2]")]
    [InlineData("{\"context\": 5, \"choices\": {}}")]
    [InlineData("{\"context\": \"C\", \"choices\": {\"a\": \"x\", \"b\": -1, \"c\": 2}}")]
    public void A_file_that_cannot_be_read_is_a_cache_miss_and_is_replaced_on_save(string text)
    {
        var path = Path.Combine(NewFolder(), "gemm-choices.json");
        File.WriteAllText(path, text);
        var choices = new GemmChoices(path, "C");
        // Only well-formed entries survive: "c" in the last case, nothing in the others.
        Assert.Equal(text.Contains("\"c\": 2", StringComparison.Ordinal) ? 1 : 0, choices.Loaded);
        Assert.False(choices.TryGet("a", out _));
        Assert.False(choices.TryGet("b", out _));
        choices.Set("d", 4);
        Assert.True(choices.Save());
        var read = new GemmChoices(path, "C");
        Assert.True(read.TryGet("d", out int index));
        Assert.Equal(4, index);
    }

    [Fact]
    public void Saving_nothing_new_writes_nothing_and_a_folder_that_is_gone_is_reported_not_thrown()
    {
        var folder = NewFolder();
        var path = Path.Combine(folder, "gemm-choices.json");
        var choices = new GemmChoices(path, "C");
        Assert.True(choices.Save());
        Assert.False(File.Exists(path)); // nothing was chosen: no file
        choices.Set("a", 1);
        choices.Set("a", 1);
        Directory.Delete(folder);
        Assert.False(choices.Save());
        Directory.CreateDirectory(folder);
        Assert.True(choices.Save()); // still unsaved after the failure: written now
        Assert.Equal(1, new GemmChoices(path, "C").Loaded);
        Assert.Throws<ArgumentOutOfRangeException>(() => choices.Set("b", -1));
    }
}
