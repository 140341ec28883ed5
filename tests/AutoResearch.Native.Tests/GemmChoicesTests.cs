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

    [Fact]
    public void A_shape_as_the_choices_file_names_it_parses_back_to_the_same_product()
    {
        // Keys of each form: batched and not, each transpose, fp32 and bf16 outputs.
        Blas.LtKey[] keys =
        [
            new(false, true, 262144, 512, 2048, ElementType.Bf16, ElementType.Bf16, ElementType.Bf16, 2048, 2048, 512, 1, 0, 0, 0),
            new(true, false, 1536, 512, 262144, ElementType.Bf16, ElementType.Bf16, ElementType.F32, 1536, 512, 512, 1, 0, 0, 0),
            new(false, false, 4, 32, 4, ElementType.Bf16, ElementType.Bf16, ElementType.Bf16, 4, 32, 32, 4, 16, 128, 128),
            new(true, true, 7, 9, 11, ElementType.F32, ElementType.Bf16, ElementType.F32, 7, 11, 9, 3, 77, 99, 63),
        ];
        foreach (var key in keys)
        {
            string shape = Blas.Describe(key);
            Assert.True(Blas.TryParseShape(shape, out var parsed), shape);
            Assert.Equal(key, parsed);
        }
        // The shipped file's own first line, as written by a run.
        Assert.True(Blas.TryParseShape("2048x512x512 batch 8 NN Bf16/Bf16/Bf16 ld 512,512,512 strides 1048576,262144,1048576", out var batched));
        Assert.Equal((2048, 512, 512, 8, 1048576L, 262144L, 1048576L), (batched.M, batched.N, batched.K, batched.Batch, batched.StrideA, batched.StrideB, batched.StrideC));

        // Anything else is not a shape: no plan is made for it.
        foreach (var text in (string[])["", "512x512x512 NN", "512x512x512 NX Bf16/Bf16/F32 ld 512,512,512", "512x512x512 NN Bf16/Half/F32 ld 512,512,512",
            "0x512x512 NN Bf16/Bf16/F32 ld 512,512,512", "512x512x512 batch 2 NN Bf16/Bf16/F32 ld 512,512,512",
            "512x512x512 NN Bf16/Bf16/F32 ld 512,512,512 strides 1,2,3", "512x512x512 batch 1 NN Bf16/Bf16/F32 ld 512,512,512 strides 1,2,3",
            "99999999999x512x512 NN Bf16/Bf16/F32 ld 512,512,512", "512x512x512 NN 2/Bf16/F32 ld 512,512,512",
            "512x512x512 NN bf16/Bf16/F32 ld 512,512,512", "512x512x512 NN Bf16/Bf16/F32 ld 1,1,1", "512x512x512 TN Bf16/Bf16/F32 ld 511,512,512"])
            Assert.False(Blas.TryParseShape(text, out _), text);
    }

    [Fact]
    public void A_single_products_strides_are_not_part_of_its_key_so_its_description_finds_it()
    {
        // A strided-batch call with one matrix (the optimizer's shape group of one) passes strides cuBLASLt ignores.
        var key = Blas.Key(false, true, 512, 512, 2048, ElementType.Bf16, ElementType.Bf16, ElementType.F32, 2048, 2048, 512, 1, 1048576, 1048576, 262144);
        Assert.Equal((0L, 0L, 0L), (key.StrideA, key.StrideB, key.StrideC));
        Assert.True(Blas.TryParseShape(Blas.Describe(key), out var parsed));
        Assert.Equal(key, parsed);
        // A batch keeps them.
        var batched = Blas.Key(false, true, 512, 512, 2048, ElementType.Bf16, ElementType.Bf16, ElementType.F32, 2048, 2048, 512, 2, 1048576, 1048576, 262144);
        Assert.Equal((1048576L, 1048576L, 262144L), (batched.StrideA, batched.StrideB, batched.StrideC));
    }

    [Fact]
    public void Every_shape_of_the_shipped_choices_is_one_a_plan_can_be_made_for()
    {
        var files = Directory.GetFiles(Path.Combine(KernelCache.DefaultKernelDirectory, "gemm-choices"), "*.json");
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            var root = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(file))!.AsObject();
            var shapes = root["choices"]!.AsObject().Select(kv => kv.Key).ToList();
            Assert.NotEmpty(shapes);
            Assert.All(shapes, shape => Assert.True(Blas.TryParseShape(shape, out _), $"{Path.GetFileName(file)}: {shape}"));
        }
    }

    [Fact]
    public void The_shapes_held_are_listed_in_ordinal_order_with_the_shipped_ones()
    {
        var folder = NewFolder();
        var cache = Path.Combine(folder, "gemm-choices.json");
        var shipped = Path.Combine(folder, "h200.json");
        var mine = new GemmChoices(cache, "GPU A");
        mine.Set("b", 1);
        Assert.True(mine.Save());
        var theirs = new GemmChoices(shipped, "GPU A");
        theirs.Set("a", 2);
        theirs.Set("c", 0);
        Assert.True(theirs.Save());
        Assert.Equal(["a", "b", "c"], new GemmChoices(cache, "GPU A", [shipped]).Shapes);
    }
}
