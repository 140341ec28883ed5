using System.IO.Compression;
using System.Text;
using SharpCompress.Compressors.Xz;

namespace AutoResearch.Data.Corpus;

/// <summary>
/// Reads plain-text corpora: UTF-8 documents separated by a line holding a single NUL character ("\n\0\n"), plain,
/// xz- or gzip-compressed. The format is taken from the file's first bytes, not its name: a file named .xz that is not xz,
/// another compression (zstd, bzip2, zip, 7z), or bytes that are not UTF-8 are errors naming the file, never text.
/// </summary>
public static class CorpusText
{
    /// <summary>The document separator: a line holding a single NUL.</summary>
    public const string Separator = "\n\0\n";

    private static readonly byte[] XzMagic = [0xFD, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0x00];
    private static readonly byte[] GzipMagic = [0x1F, 0x8B];

    /// <summary>Compressions we do not read, by their first bytes.</summary>
    private static readonly (byte[] Magic, string Name)[] Unsupported =
    [
        ([0x28, 0xB5, 0x2F, 0xFD], "zstd"),
        ([(byte)'B', (byte)'Z', (byte)'h'], "bzip2"),
        ([(byte)'P', (byte)'K', 0x03, 0x04], "zip"),
        ([(byte)'7', (byte)'z', 0xBC, 0xAF, 0x27, 0x1C], "7z"),
    ];

    /// <summary>Opens a corpus file for reading, decompressing xz or gzip on the fly (by the file's first bytes).</summary>
    public static Stream Open(string path)
    {
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        try
        {
            Span<byte> head = stackalloc byte[8];
            int read = file.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            head = head[..read];
            file.Position = 0;
            if (head.StartsWith(XzMagic))
                return new BufferedStream(new XZStream(file), 1 << 20);
            if (head.StartsWith(GzipMagic))
                return new BufferedStream(new GZipStream(file, CompressionMode.Decompress), 1 << 20);
            foreach (var (magic, name) in Unsupported)
            {
                if (head.StartsWith(magic))
                    throw new InvalidDataException($"'{path}' is {name}-compressed; decompress it first, or give plain, .xz or .gz text or Parquet files");
            }
            if (path.EndsWith(".xz", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"'{path}' is named like a compressed file but does not start like one: damaged, or misnamed plain text?");
            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
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

    /// <summary>
    /// Splits a corpus stream into documents; empty documents are skipped. A stream that cannot be decompressed or decoded as
    /// UTF-8 throws <see cref="InvalidDataException"/> naming <paramref name="source"/>.
    /// </summary>
    public static IEnumerable<string> ReadDocuments(Stream stream, string source = "the corpus")
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var reader = new StreamReader(stream, new UTF8Encoding(false, throwOnInvalidBytes: true), detectEncodingFromByteOrderMarks: false, bufferSize: 1 << 16);
        var current = new StringBuilder();
        string? line;
        bool first = true;
        while ((line = ReadLine(reader, source)) != null)
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

    /// <summary>Reads the documents of a corpus file (plain, xz or gzip).</summary>
    public static IEnumerable<string> ReadDocuments(string path)
    {
        using var stream = Open(path);
        foreach (var document in ReadDocuments(stream, $"'{path}'"))
            yield return document;
    }

    /// <summary>One line; a decompression or decoding failure becomes an error that names the source.</summary>
    private static string? ReadLine(StreamReader reader, string source)
    {
        try
        {
            return reader.ReadLine();
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException($"{source} is not UTF-8 text (binary data, or another encoding): {e.Message}", e);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"{source} cannot be read: {e.Message} (a damaged or truncated compressed file?)", e);
        }
    }
}
