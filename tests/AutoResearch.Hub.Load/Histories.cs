using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace AutoResearch.Hub.Load;

/// <summary>
/// The commits the agents push, made with one `git fast-import`: a shared base, and per agent a chain of commits on it.
/// Bundle 0 of an agent holds its first commit (the base as prerequisite); bundle k holds commit k (commit k-1 as prerequisite).
/// </summary>
public sealed class Histories
{
    public required string BaseHash { get; init; }
    public required byte[] BaseBundle { get; init; }
    public required string[][] Hashes { get; init; }
    public required byte[][][] Bundles { get; init; }

    public static Histories Make(string directory, int agents, int pushes, int seed)
    {
        Directory.CreateDirectory(directory);
        Git(directory, null, "init", "--quiet", "--bare");
        var stream = new StringBuilder();
        void Commit(string branch, int mark, int? from, string message, string file)
        {
            string data = $"{message} seed {seed}\n";
            stream.Append(CultureInfo.InvariantCulture, $"commit refs/heads/{branch}\nmark :{mark}\ncommitter load <load@example.com> {1_700_000_000 + mark} +0000\n")
                .Append(CultureInfo.InvariantCulture, $"data {Encoding.UTF8.GetByteCount(message)}\n{message}\n");
            if (from is { } f)
                stream.Append(CultureInfo.InvariantCulture, $"from :{f}\n");
            stream.Append(CultureInfo.InvariantCulture, $"M 644 inline {file}\ndata {Encoding.UTF8.GetByteCount(data)}\n{data}\n");
        }
        Commit("base", 1, null, "baseline", "train.txt");
        int mark = 2;
        for (int i = 0; i < agents; i++)
        {
            for (int k = 0; k < pushes; k++)
            {
                Commit($"a{i}", mark, k == 0 ? 1 : mark - 1, $"agent {i} experiment {k}", $"agent{i}.txt");
                stream.Append(CultureInfo.InvariantCulture, $"reset refs/tags/a{i}-{k}\nfrom :{mark}\n\n");
                mark++;
            }
        }
        Git(directory, stream.ToString(), "fast-import", "--quiet");
        string baseHash = Git(directory, null, "rev-parse", "base").Trim();
        var hashes = new string[agents][];
        var bundles = new byte[agents][][];
        Parallel.For(0, agents, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            hashes[i] = new string[pushes];
            bundles[i] = new byte[pushes][];
            for (int k = 0; k < pushes; k++)
            {
                hashes[i][k] = Git(directory, null, "rev-parse", $"a{i}-{k}").Trim();
                bundles[i][k] = Bundle(directory, k == 0 ? $"base..a{i}-0" : $"a{i}-{k - 1}..a{i}-{k}");
            }
        });
        return new Histories { BaseHash = baseHash, BaseBundle = Bundle(directory, "base"), Hashes = hashes, Bundles = bundles };
    }

    private static byte[] Bundle(string directory, string range)
    {
        string file = Path.Combine(directory, Guid.NewGuid().ToString("N") + ".bundle");
        Git(directory, null, "bundle", "create", "--quiet", file, range);
        byte[] bytes = File.ReadAllBytes(file);
        File.Delete(file);
        return bytes;
    }

    private static string Git(string directory, string? stdin, params string[] args)
    {
        var psi = new ProcessStartInfo("git") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null };
        psi.ArgumentList.Add("--git-dir");
        psi.ArgumentList.Add(directory);
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        psi.Environment["GIT_CONFIG_NOSYSTEM"] = "1";
        psi.Environment["GIT_CONFIG_GLOBAL"] = "/dev/null";
        using var p = Process.Start(psi)!;
        if (stdin is not null)
        {
            p.StandardInput.Write(stdin);
            p.StandardInput.Close();
        }
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"git {string.Join(' ', args)} failed: {err.Result}");
        return output;
    }
}
