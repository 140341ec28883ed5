using System.Text.RegularExpressions;

namespace AutoResearch.Hub;

/// <summary>The shapes every name and hash from a request must have before it reaches SQL, git or a path.</summary>
public static partial class HubValidation
{
    /// <summary>Agent and channel names: a letter or digit, then up to 63 of [A-Za-z0-9_-].</summary>
    public static bool IsName(string? value) => value is not null && NamePattern().IsMatch(value);

    /// <summary>Commit hashes: 7 to 40 lowercase hex digits.</summary>
    public static bool IsHash(string? value) => value is not null && HashPattern().IsMatch(value);

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[0-9a-f]{7,40}$", RegexOptions.CultureInvariant)]
    private static partial Regex HashPattern();
}
