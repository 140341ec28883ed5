using System.Globalization;
using System.Text.RegularExpressions;

namespace AutoResearch.Hub;

/// <summary>
/// One parsed result post: `commit:&lt;7-char&gt; platform:&lt;gpu&gt; val_bpb:&lt;v&gt; vram_gb:&lt;v&gt; | &lt;description&gt;`.
/// </summary>
public sealed partial record ResultLine(string Commit, string Platform, double ValBpb, double VramGb, string Description)
{
    public static bool TryParse(string content, out ResultLine? result)
    {
        result = null;
        var m = Pattern().Match(content ?? "");
        if (!m.Success)
            return false;
        if (!double.TryParse(m.Groups[3].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double bpb)
            || !double.TryParse(m.Groups[4].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double vram)
            || !double.IsFinite(bpb) || !double.IsFinite(vram))
            return false;
        result = new ResultLine(m.Groups[1].Value, m.Groups[2].Value, bpb, vram, m.Groups[5].Value.Trim());
        return true;
    }

    [GeneratedRegex(@"^\s*commit:([0-9a-f]{7,40})\s+platform:(\S+)\s+val_bpb:(\S+)\s+vram_gb:(\S+)\s*\|\s*(.*)$", RegexOptions.CultureInvariant | RegexOptions.Singleline)]
    private static partial Regex Pattern();
}
