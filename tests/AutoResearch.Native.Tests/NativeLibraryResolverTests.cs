using Xunit;

namespace AutoResearch.Native.Tests;

public class NativeLibraryResolverTests
{
    [Fact]
    public void Candidates_try_override_folder_then_standard_folders_then_bare_names()
    {
        var candidates = NativeLibraryResolver.Candidates(["libx.so.13", "libx.so"], "/opt/x", ["/a", "/b"]);
        Assert.Equal(
            ["/opt/x/libx.so.13", "/opt/x/libx.so", "/a/libx.so.13", "/a/libx.so", "/b/libx.so.13", "/b/libx.so", "libx.so.13", "libx.so"],
            candidates);
    }

    [Fact]
    public void Missing_library_error_names_every_attempt_and_the_install_hint()
    {
        var e = Assert.Throws<NativeLibraryNotFoundException>(() =>
            NativeLibraryResolver.Load("Test library", ["libnothere.so.1"], "Install the thing.", null, ["/no/such/folder"],
                _ => (IntPtr.Zero, "refused by the test loader")));
        Assert.Contains("/no/such/folder/libnothere.so.1: no such file", e.Message, StringComparison.Ordinal);
        Assert.Contains("libnothere.so.1: refused by the test loader", e.Message, StringComparison.Ordinal);
        Assert.Contains("Install the thing.", e.Message, StringComparison.Ordinal);
        Assert.Contains(NativeLibraryResolver.OverrideVariable, e.Message, StringComparison.Ordinal);
        Assert.Equal(2, e.Attempts.Count);
    }
}
