using System.Globalization;
using System.Text.RegularExpressions;

namespace AutoResearch.Hub;

/// <summary>
/// One parsed result post:
/// `commit:&lt;7-40 hex&gt; platform:&lt;gpu&gt; val_bpb:&lt;v&gt; vram_gb:&lt;v&gt; [status:keep|discard|crash] | &lt;description&gt;`.
/// A crash is a run with no measurement: status:crash, or val_bpb 0 (program.md's crash rows); crashes are never ranked.
/// </summary>
public sealed partial record ResultLine(string Commit, string Platform, double ValBpb, double VramGb, string Status, string Description)
{
    public const string Format = "commit:<7-40 hex> platform:<gpu> val_bpb:<v> vram_gb:<v> [status:keep|discard|crash] | <description>";

    /// <summary>Largest val_bpb taken as a measurement (a byte-level model starts near 8).</summary>
    public const double MaxValBpb = 100;

    public bool IsCrash => Status == "crash";

    /// <summary>True when the content is meant as a result line (it starts with "commit:"), so that a malformed one is an error, not chat.</summary>
    public static bool LooksLikeResult(string content) => content.AsSpan().TrimStart().StartsWith("commit:", StringComparison.Ordinal);

    public static bool TryParse(string content, out ResultLine? result) => Parse(content, out result) is null;

    /// <summary>Parses a result line; returns null on success, else a message naming the field and what was expected.</summary>
    public static string? Parse(string content, out ResultLine? result)
    {
        result = null;
        var m = Pattern().Match(content ?? "");
        if (!m.Success)
            return $"a result line has the form '{Format}'";
        string commit = m.Groups["commit"].Value, platform = m.Groups["platform"].Value;
        if (!HubValidation.IsHash(commit))
            return $"commit: expected {HubValidation.HashRule}, got '{commit}'";
        if (!HubValidation.IsName(platform))
            return $"platform: expected {HubValidation.NameRule}, got '{platform}'";
        if (!double.TryParse(m.Groups["bpb"].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double bpb)
            || !double.IsFinite(bpb) || bpb >= MaxValBpb)
            return $"val_bpb: expected a number from 0 to {MaxValBpb} (0 for a crash), got '{m.Groups["bpb"].Value}'";
        if (!double.TryParse(m.Groups["vram"].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double vram)
            || !double.IsFinite(vram) || vram > 100_000)
            return $"vram_gb: expected a non-negative number of GB, got '{m.Groups["vram"].Value}'";
        string status = m.Groups["status"].Success ? m.Groups["status"].Value : "keep";
        if (status is not ("keep" or "discard" or "crash"))
            return $"status: expected keep, discard or crash, got '{status}'";
        if (bpb == 0)
            status = "crash";
        result = new ResultLine(commit, platform, bpb, vram, status, m.Groups["description"].Value.Trim());
        return null;
    }

    [GeneratedRegex(@"\A\s*commit:(?<commit>\S*)\s+platform:(?<platform>\S*)\s+val_bpb:(?<bpb>\S*)\s+vram_gb:(?<vram>\S*)(?:\s+status:(?<status>\S*))?\s*\|(?<description>.*)\z",
        RegexOptions.CultureInvariant | RegexOptions.Singleline)]
    private static partial Regex Pattern();
}
