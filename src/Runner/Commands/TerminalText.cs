using System.Text;

namespace AutoResearch.Runner;

/// <summary>
/// Text from the hub (commit subjects, posts, agent names) made safe to print: control characters (escape sequences,
/// carriage returns, bells) and bidirectional overrides are dropped, so nobody can rewrite a user's terminal.
/// </summary>
public static class TerminalText
{
    /// <summary>Keeps newlines and tabs (a post may have several lines), drops every other control character.</summary>
    public static string Clean(string? text) => Filter(text, keepLines: true);

    /// <summary>For one-line fields: newlines and tabs become spaces, other control characters are dropped.</summary>
    public static string OneLine(string? text) => Filter(text, keepLines: false);

    private static string Filter(string? text, bool keepLines)
    {
        if (string.IsNullOrEmpty(text))
            return "";
        var sb = new StringBuilder(text.Length);
        foreach (char c in text)
        {
            if (c is '\n' or '\t')
                sb.Append(keepLines ? c : ' ');
            else if (!char.IsControl(c) && !IsBidiControl(c))
                sb.Append(c);
        }
        return sb.ToString();
    }

    private static bool IsBidiControl(char c) => c is (>= '\u202A' and <= '\u202E') or (>= '\u2066' and <= '\u2069') or '\u200E' or '\u200F' or '\u061C';
}
