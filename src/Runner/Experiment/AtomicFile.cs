namespace AutoResearch.Runner.Experiment;

/// <summary>
/// Writes a whole file under a temporary name in the same folder, then renames it over the target, so a reader
/// never sees a half-written file and a failed write leaves the old file as it was.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes text produced by <paramref name="write"/> (UTF-8, no BOM).</summary>
    public static void WriteText(string path, Action<TextWriter> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false), leaveOpen: true);
            write(writer);
        });
    }

    /// <summary>Writes the given bytes.</summary>
    public static void WriteBytes(string path, byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        Write(path, stream => stream.Write(bytes));
    }

    private static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = Path.GetFullPath(path);
        if (Directory.Exists(fullPath))
            throw new IOException($"Cannot write {path}: {path} is a folder; give a file name inside it.");
        string folder = Path.GetDirectoryName(fullPath) ?? ".";
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Cannot write {path}: folder {folder} does not exist.");
        string temporary = Path.Combine(folder, $".{Path.GetFileName(fullPath)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            FileStream created;
            try
            {
                created = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The error would name the temporary file, which the user never asked for.
                string reason = e is UnauthorizedAccessException ? "no permission to create a file there" : e.Message.Replace(temporary, "a new file", StringComparison.Ordinal);
                throw new IOException($"Cannot write {path}: folder {folder} does not take a new file ({reason}).", e);
            }
            using (var stream = created)
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, fullPath, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary))
                File.Delete(temporary);
        }
    }
}
