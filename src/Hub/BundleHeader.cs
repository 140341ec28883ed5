using System.Text;

namespace AutoResearch.Hub;

/// <summary>
/// The text header of a git bundle (v2 or v3, SHA-1): the commits it needs (prerequisites), the refs it carries (tips),
/// and the offset at which its pack starts. Parsed here so that a push needs no git process before the pack is indexed.
/// </summary>
public sealed record BundleHeader(string[] Prerequisites, string[] Tips, long PackOffset)
{
    /// <summary>Longest header read; real headers are one line per ref.</summary>
    public const int MaxHeaderBytes = 1 << 20;

    /// <summary>Most refs a pushed bundle may carry.</summary>
    public const int MaxTips = 1000;

    /// <summary>Reads the header; returns null on success, else what is wrong with it.</summary>
    public static string? TryRead(Stream bundle, out BundleHeader? header)
    {
        header = null;
        byte[] buffer = new byte[MaxHeaderBytes];
        int length = 0, n;
        while (length < buffer.Length && (n = bundle.Read(buffer, length, buffer.Length - length)) > 0)
            length += n;
        int end = buffer.AsSpan(0, length).IndexOf("\n\n"u8);
        if (end < 0)
            return length == 0 ? "the bundle is empty" : "not a git bundle: no end of header (a blank line) in its first 1 MiB";
        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(buffer, 0, end);
        }
        catch (DecoderFallbackException)
        {
            return "not a git bundle: its header is not text";
        }
        var lines = text.Split('\n');
        if (lines[0] is not ("# v2 git bundle" or "# v3 git bundle"))
            return "not a git bundle: the first line must be '# v2 git bundle' or '# v3 git bundle'";
        var prerequisites = new List<string>();
        var tips = new List<string>();
        foreach (var line in lines.AsSpan(1))
        {
            if (line.StartsWith('@'))
            {
                if (lines[0][2] != '3' || line != "@object-format=sha1")
                    return $"bundle capability '{Truncate(line)}' is not supported (only SHA-1 repositories)";
                continue;
            }
            if (line.StartsWith('-'))
            {
                string oid = line.Length >= 41 ? line[1..41] : line[1..];
                if (oid.Length != 40 || !HubValidation.IsHash(oid) || (line.Length > 41 && line[41] != ' '))
                    return $"bundle prerequisite '{Truncate(line)}': expected '-<40 hex digits>'";
                prerequisites.Add(oid);
                continue;
            }
            int space = line.IndexOf(' ', StringComparison.Ordinal);
            if (space != 40 || !HubValidation.IsHash(line[..40]) || line.Length == 41)
                return $"bundle ref '{Truncate(line)}': expected '<40 hex digits> <refname>'";
            tips.Add(line[..40]);
        }
        if (tips.Count == 0)
            return "the bundle carries no ref";
        if (tips.Count > MaxTips)
            return $"the bundle carries {tips.Count} refs; at most {MaxTips}";
        header = new BundleHeader([.. prerequisites.Distinct(StringComparer.Ordinal)], [.. tips.Distinct(StringComparer.Ordinal)], end + 2);
        return null;
    }

    private static string Truncate(string s) => s.Length <= 60 ? s : s[..60] + "...";
}
