namespace AutoResearch.Bench.Tests;

/// <summary>A fresh folder under the system temp folder, deleted on dispose; optionally holding .cu files.</summary>
public sealed class KernelFolder : IDisposable
{
    public KernelFolder(params string[] files)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "autoresearch-bench-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
        foreach (var file in files)
        {
            var full = System.IO.Path.Combine(Path, file);
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
            File.WriteAllText(full, "// test kernel\n");
        }
    }

    public string Path { get; }

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
