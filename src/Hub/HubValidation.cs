using System.Text.RegularExpressions;

namespace AutoResearch.Hub;

/// <summary>
/// The shapes every name and hash from a request must have before it reaches SQL, git or a path.
/// Patterns are anchored with \A and \z: `$` would also match before a final newline, letting "agent-A\n" pass as a name.
/// </summary>
public static partial class HubValidation
{
    /// <summary>What a name must look like, for error messages.</summary>
    public const string NameRule = "1-64 characters of [A-Za-z0-9_-], starting with a letter or digit";

    /// <summary>What a hash must look like, for error messages.</summary>
    public const string HashRule = "7-40 lowercase hex digits";

    /// <summary>Agent, channel and platform names: a letter or digit, then up to 63 of [A-Za-z0-9_-].</summary>
    public static bool IsName(string? value) => value is not null && NamePattern().IsMatch(value);

    /// <summary>Commit hashes: 7 to 40 lowercase hex digits.</summary>
    public static bool IsHash(string? value) => value is not null && HashPattern().IsMatch(value);

    /// <summary>True when the text holds a control character other than newline and tab (escape sequences, NUL, CR...).</summary>
    public static bool HasControlCharacters(string value)
    {
        foreach (char ch in value)
        {
            if (char.IsControl(ch) && ch is not '\n' and not '\t')
                return true;
        }
        return false;
    }

    [GeneratedRegex(@"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\z", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();

    [GeneratedRegex(@"\A[0-9a-f]{7,40}\z", RegexOptions.CultureInvariant)]
    private static partial Regex HashPattern();
}
