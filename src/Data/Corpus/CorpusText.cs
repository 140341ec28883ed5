using System.Text;
using SharpCompress.Compressors.Xz;

namespace AutoResearch.Data.Corpus;

/// <summary>
/// Reads plain-text corpora: UTF-8 documents separated by a line holding a single NUL character
/// ("\n\0\n"), optionally xz-compressed (by the ".xz" file name ending).
/// </summary>
public static class CorpusText
{
    /// <summary>The document separator: a line holding a single NUL.</summary>
    public const string Separator = "\n\0\n";

    /// <summary>Opens a corpus file for reading, decompressing ".xz" files on the fly.</summary>
    public static Stream Open(string path)
    {
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        if (!path.EndsWith(".xz", StringComparison.OrdinalIgnoreCase))
            return file;
        return new BufferedStream(new XZStream(file), 1 << 20);
    }

    /// <summary>Opens the corpus shipped with the project (the public-domain State of the Union sample).</summary>
    public static Stream OpenEmbeddedSample()
    {
        var resource = typeof(CorpusText).Assembly.GetManifestResourceStream(EmbeddedSampleName)
            ?? throw new InvalidOperationException($"the embedded sample '{EmbeddedSampleName}' is missing from the assembly");
        return new BufferedStream(new XZStream(resource), 1 << 20);
    }

    /// <summary>Manifest name of the embedded sample corpus (xz-compressed text).</summary>
    public const string EmbeddedSampleName = "AutoResearch.Data.sotu.txt.xz";

    /// <summary>Splits a corpus stream into documents; empty documents are skipped.</summary>
    public static IEnumerable<string> ReadDocuments(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, bufferSize: 1 << 16);
        var current = new StringBuilder();
        string? line;
        bool first = true;
        while ((line = reader.ReadLine()) != null)
        {
            if (line == "\0")
            {
                if (current.Length > 0)
                    yield return current.ToString();
                current.Clear();
                first = true;
                continue;
            }
            if (!first)
                current.Append('\n');
            current.Append(line);
            first = false;
        }
        if (current.Length > 0)
            yield return current.ToString();
    }

    /// <summary>Reads the documents of a corpus file (plain or ".xz").</summary>
    public static IEnumerable<string> ReadDocuments(string path)
    {
        using var stream = Open(path);
        foreach (var document in ReadDocuments(stream))
            yield return document;
    }
}
