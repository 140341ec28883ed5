using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AutoResearch.Native;

/// <summary>
/// Which of cuBLASLt's heuristic candidates each GEMM shape was given, kept in a file (beside the kernel cache) so that the
/// next run takes it without timing the candidates again: a warm start then skips the first step's tuning, and runs on one
/// machine use the same algorithms, so the same sums in the same order. The file records the context the choices hold for
/// (the GPU, cuBLASLt's version, how many candidates were timed); a file of another context, or one that cannot be read, is
/// set aside and the choices start afresh: it is a cache, never an error.
/// </summary>
public sealed class GemmChoices
{
    private readonly ConcurrentDictionary<string, int> _choices = new(StringComparer.Ordinal);
    private int _unsaved;

    /// <summary>The choices in <paramref name="path"/> that were made in <paramref name="context"/> (none if the file is missing,
    /// unreadable or of another context), then, for shapes the file does not hold, those of the <paramref name="shipped"/> files
    /// made in the same context: choices timed once on such a GPU and shipped with the kernels, so that a new machine of that
    /// kind skips the timing too.</summary>
    public GemmChoices(string path, string context, IEnumerable<string>? shipped = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(context);
        Path = path;
        Context = context;
        foreach (var (shape, index) in Read(path, context))
            _choices[shape] = index;
        Loaded = _choices.Count;
        foreach (var file in shipped ?? [])
        {
            foreach (var (shape, index) in Read(file, context))
            {
                if (_choices.TryAdd(shape, index))
                    Shipped++;
            }
        }
    }

    /// <summary>The well-formed choices of the file at <paramref name="path"/> if it was written in <paramref name="context"/>;
    /// none if it is missing, unreadable or of another context.</summary>
    private static List<(string Shape, int Index)> Read(string path, string context)
    {
        var read = new List<(string, int)>();
        try
        {
            if (File.Exists(path) && JsonNode.Parse(File.ReadAllText(path)) is JsonObject root
                && root["context"]?.GetValue<string>() == context && root["choices"] is JsonObject choices)
            {
                foreach (var (shape, node) in choices)
                {
                    if (node is JsonValue value && value.TryGetValue(out int index) && index >= 0)
                        read.Add((shape, index));
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException or FormatException)
        {
            read.Clear(); // unreadable: nothing from it (Save replaces the cache's file)
        }
        return read;
    }

    public string Path { get; }

    /// <summary>What the choices hold for: the GPU, cuBLASLt's version, the candidate count.</summary>
    public string Context { get; }

    /// <summary>Choices read from the file.</summary>
    public int Loaded { get; }

    /// <summary>Choices taken from the shipped files (for shapes the file did not hold).</summary>
    public int Shipped { get; }

    /// <summary>The shapes held now, in ordinal order (<see cref="Blas.PlanRemembered"/> plans them ahead).</summary>
    public IReadOnlyList<string> Shapes => [.. _choices.Keys.Order(StringComparer.Ordinal)];

    /// <summary>Choices held now.</summary>
    public int Count => _choices.Count;

    /// <summary>The candidate index chosen for <paramref name="shape"/> before, if any.</summary>
    public bool TryGet(string shape, out int index) => _choices.TryGetValue(shape, out index);

    /// <summary>Records the choice for <paramref name="shape"/> (kept in memory until <see cref="Save"/>).</summary>
    public void Set(string shape, int index)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        if (!_choices.TryGetValue(shape, out int old) || old != index)
        {
            _choices[shape] = index;
            Interlocked.Exchange(ref _unsaved, 1);
        }
    }

    /// <summary>
    /// Writes the choices if any were added since the last save (to a temporary name, then renamed). Returns false, leaving the
    /// file as it was, when it cannot be written: the next run then times the candidates again.
    /// </summary>
    public bool Save()
    {
        if (Interlocked.Exchange(ref _unsaved, 0) == 0)
            return true;
        var choices = new JsonObject();
        foreach (var (shape, index) in _choices.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            choices[shape] = index;
        var text = new JsonObject { ["context"] = Context, ["choices"] = choices }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        var temp = $"{Path}.{Environment.ProcessId}.tmp";
        try
        {
            File.WriteAllText(temp, text);
            File.Move(temp, Path, overwrite: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try
            {
                File.Delete(temp);
            }
            catch (Exception inner) when (inner is IOException or UnauthorizedAccessException)
            {
            }
            Interlocked.Exchange(ref _unsaved, 1);
            return false;
        }
    }
}
