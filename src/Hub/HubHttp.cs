using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace AutoResearch.Hub;

/// <summary>
/// Request reading and answers shared by the endpoints: JSON bodies read under a size limit and checked as UTF-8,
/// fields read with messages that name them, query cursors, and errors as {"error": "..."}.
/// </summary>
public static class HubHttp
{
    public const string AgentItem = "hub.agent";

    public static string Agent(HttpContext ctx) => (string)ctx.Items[AgentItem]!;

    public static IResult Error(int status, string message) => Results.Json(new { error = message }, statusCode: status);

    /// <summary>Reads a JSON object body; an error answer names what is wrong (size, UTF-8, syntax, not an object).</summary>
    public static async Task<(JsonElement Body, IResult? Error)> ReadJsonObject(HttpContext ctx, int maxBytes)
    {
        byte[] bytes;
        try
        {
            bytes = await ReadLimited(ctx.Request.Body, maxBytes, ctx.RequestAborted);
        }
        catch (InvalidDataException)
        {
            return (default, Error(413, $"request body larger than {maxBytes} bytes"));
        }
        if (!Utf8.IsValid(bytes))
            return (default, Error(400, $"request body is not valid UTF-8 (first bad byte at offset {FirstInvalidUtf8(bytes)})"));
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                return (default, Error(400, "request body must be a JSON object"));
            return (doc.RootElement.Clone(), null);
        }
        catch (JsonException e)
        {
            return (default, Error(400, $"request body must be a JSON object: {e.Message}"));
        }
    }

    /// <summary>
    /// Reads a string field. Missing and not required: null, no error. Wrong type, invalid text (a lone UTF-16 surrogate
    /// escape) or control characters other than newline and tab: an error naming the field.
    /// </summary>
    public static IResult? TryGetString(JsonElement body, string field, bool required, out string? value)
    {
        value = null;
        if (!body.TryGetProperty(field, out var element) || element.ValueKind == JsonValueKind.Null)
            return required ? Error(400, $"field '{field}' is required (a string)") : null;
        if (element.ValueKind != JsonValueKind.String)
            return Error(400, $"field '{field}': expected a string, got {element.ValueKind.ToString().ToLowerInvariant()}");
        try
        {
            value = element.GetString()!;
        }
        catch (InvalidOperationException)
        {
            return Error(400, $"field '{field}': not valid text (a lone UTF-16 surrogate escape such as \\ud800)");
        }
        if (HubValidation.HasControlCharacters(value))
            return Error(400, $"field '{field}': control characters are not allowed (newline and tab are)");
        return null;
    }

    /// <summary>An optional positive integer field (e.g. reply_to).</summary>
    public static IResult? TryGetId(JsonElement body, string field, out long? value)
    {
        value = null;
        if (!body.TryGetProperty(field, out var element) || element.ValueKind == JsonValueKind.Null)
            return null;
        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt64(out long v) || v < 1)
            return Error(400, $"field '{field}': expected a positive integer (a post id)");
        value = v;
        return null;
    }

    /// <summary>?limit= from 1 to max (default fallback).</summary>
    public static IResult? TryLimit(HttpContext ctx, out int limit, int fallback = 50, int max = 1000)
    {
        limit = fallback;
        string? raw = ctx.Request.Query["limit"];
        if (raw is null)
            return null;
        if (!int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > max)
            return Error(400, $"limit: expected an integer from 1 to {max}");
        return null;
    }

    /// <summary>?before= (a paging cursor: the id or seq of the last item of the previous page).</summary>
    public static IResult? TryCursor(HttpContext ctx, string name, out long? cursor)
    {
        cursor = null;
        string? raw = ctx.Request.Query[name];
        if (raw is null)
            return null;
        if (!long.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out long v) || v < 1)
            return Error(400, $"{name}: expected a positive integer (the id or seq of the last item of the previous page)");
        cursor = v;
        return null;
    }

    /// <summary>When a page is full, a Link header pointing at the next one (RFC 8288), so clients need not build cursors.</summary>
    public static void NextPageLink(HttpContext ctx, int count, int limit, long lastCursor)
    {
        if (count < limit)
            return;
        var query = new StringBuilder();
        foreach (var (k, v) in ctx.Request.Query)
        {
            if (k is "before" or "limit")
                continue;
            query.Append(Uri.EscapeDataString(k)).Append('=').Append(Uri.EscapeDataString(v.ToString())).Append('&');
        }
        query.Append(CultureInfo.InvariantCulture, $"limit={limit}&before={lastCursor}");
        ctx.Response.Headers.Link = $"<{ctx.Request.Path}?{query}>; rel=\"next\"";
    }

    public static async Task<byte[]> ReadLimited(Stream source, long maxBytes, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        await CopyLimited(source, buffer, maxBytes, ct);
        return buffer.ToArray();
    }

    /// <summary>Copies at most maxBytes; throws <see cref="InvalidDataException"/> past them.</summary>
    public static async Task<long> CopyLimited(Stream source, Stream destination, long maxBytes, CancellationToken ct)
    {
        byte[] chunk = new byte[81920];
        long total = 0;
        int n;
        while ((n = await source.ReadAsync(chunk, ct)) > 0)
        {
            total += n;
            if (total > maxBytes)
                throw new InvalidDataException("body too large");
            await destination.WriteAsync(chunk.AsMemory(0, n), ct);
        }
        return total;
    }

    private static int FirstInvalidUtf8(byte[] bytes)
    {
        // The decoder stops at the first invalid sequence: bytesRead is its offset.
        char[] chars = new char[bytes.Length];
        Utf8.ToUtf16(bytes, chars, out int bytesRead, out _, replaceInvalidSequences: false);
        return bytesRead;
    }
}
