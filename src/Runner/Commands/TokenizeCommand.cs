using System.CommandLine;
using System.Globalization;
using System.Text;
using AutoResearch.Data;
using AutoResearch.Data.Tokenizer;

namespace AutoResearch.Runner;

/// <summary>`autoresearch tokenize`: stdin text → ids (space-separated), or ids → text with --decode; --stats for bytes per token.</summary>
public static class TokenizeCommand
{
    public static Command Create()
    {
        var decode = new Option<bool>("--decode") { Description = "Read space-separated ids from stdin and print the text" };
        var stats = new Option<bool>("--stats") { Description = "Print characters, bytes, tokens and bytes/token instead of the ids" };
        var tokenizerDir = new Option<string?>("--tokenizer") { Description = "Tokenizer folder (default: the cache's tokenizer/)" };
        var command = new Command("tokenize", "Encode stdin to token ids (or decode ids with --decode) with the trained tokenizer.")
        {
            decode, stats, tokenizerDir,
        };
        command.Validators.Add(r =>
        {
            if (r.GetValue(decode) && r.GetValue(stats))
                r.AddError("--stats counts what an encoding gives and does not go with --decode: leave one of them out");
        });
        command.SetAction(parse =>
        {
            var tokenizer = TokenizerFiles.Load(parse.GetValue(tokenizerDir) ?? CachePaths.Default().Tokenizer);
            var input = Console.In.ReadToEnd();
            if (parse.GetValue(decode))
            {
                var ids = input.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Select((s, i) =>
                    int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int id) ? id
                        : throw new FormatException($"--decode: '{s}' (item {i + 1}) is not a token id")).ToArray();
                Console.Write(tokenizer.Decode(ids));
                return 0;
            }
            var encoded = tokenizer.Encode(input);
            if (parse.GetValue(stats))
            {
                int bytes = Encoding.UTF8.GetByteCount(input);
                Console.WriteLine($"characters {input.Length}, bytes {bytes}, tokens {encoded.Length}, bytes/token {bytes / (double)Math.Max(1, encoded.Length):F3}");
            }
            else
            {
                Console.WriteLine(string.Join(' ', encoded));
            }
            return 0;
        });
        return command;
    }
}
