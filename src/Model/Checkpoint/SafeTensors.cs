using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AutoResearch.Native;

namespace AutoResearch.Model.Checkpoint;

/// <summary>
/// Reads and writes the safetensors format (so a checkpoint opens in PyTorch): an 8-byte little-endian header length, a JSON
/// header mapping each name to {dtype, shape, data_offsets}, then the raw little-endian data. F32 and BF16 are written; F32,
/// BF16 and F16 are read. Files are written to a temporary name and renamed.
/// </summary>
public static class SafeTensors
{
    public static void Write(string path, IReadOnlyList<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var header = new JsonObject();
        if (metadata is not null)
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata)
                meta[k] = v;
            header["__metadata__"] = meta;
        }
        long offset = 0;
        foreach (var t in tensors)
        {
            if (t.Dtype is not ("F32" or "BF16"))
                throw new ArgumentException($"tensor '{t.Name}': can only write F32 or BF16, not {t.Dtype}");
            if (t.Count != t.Values.Length)
                throw new ArgumentException($"tensor '{t.Name}': shape [{string.Join(", ", t.Shape)}] holds {t.Count} values, {t.Values.Length} given");
            long bytes = t.Count * (t.Dtype == "F32" ? 4 : 2);
            header[t.Name] = new JsonObject
            {
                ["dtype"] = t.Dtype,
                ["shape"] = new JsonArray(t.Shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8; // data starts 8-byte aligned; padding with spaces is valid JSON
        var temp = $"{path}.{Environment.ProcessId}.tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> length = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
                stream.Write(length);
                stream.Write(json);
                for (int i = json.Length; i < padded; i++)
                    stream.WriteByte((byte)' ');
                foreach (var t in tensors)
                {
                    if (t.Dtype == "F32")
                        stream.Write(MemoryMarshal.AsBytes(t.Values.AsSpan()));
                    else
                        stream.Write(MemoryMarshal.AsBytes(Bf16.FromFloat(t.Values).AsSpan()));
                }
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    public static Dictionary<string, SafeTensor> Read(string path)
    {
        var bytes = ReadFile(path);
        var (header, headerLength) = ParseHeader(path, bytes);
        var data = bytes.AsSpan(8 + (int)headerLength);
        var result = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
                continue;
            try
            {
                var dtype = node!["dtype"]!.GetValue<string>();
                var shape = node["shape"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray();
                var offsets = node["data_offsets"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray();
                long count = shape.Aggregate(1L, (a, b) => a * b);
                int width = dtype switch
                {
                    "F32" => 4,
                    "BF16" or "F16" => 2,
                    _ => throw new InvalidDataException($"'{path}': tensor '{name}' has dtype {dtype}; expected F32, BF16 or F16"),
                };
                if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] > data.Length || offsets[1] - offsets[0] != count * width)
                    throw new InvalidDataException($"'{path}': tensor '{name}' has data_offsets [{string.Join(", ", offsets)}] that do not hold {count} {dtype} values within {data.Length} data bytes");
                var raw = data.Slice((int)offsets[0], (int)(offsets[1] - offsets[0]));
                var values = new float[count];
                if (dtype == "F32")
                    MemoryMarshal.Cast<byte, float>(raw).CopyTo(values);
                else if (dtype == "BF16")
                    Bf16.ToFloat(MemoryMarshal.Cast<byte, ushort>(raw), values);
                else
                {
                    var halves = MemoryMarshal.Cast<byte, Half>(raw);
                    for (int i = 0; i < values.Length; i++)
                        values[i] = (float)halves[i];
                }
                result[name] = new SafeTensor(name, dtype, shape, values);
            }
            catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"'{path}': tensor '{name}' has a malformed header entry (dtype, shape and data_offsets expected)", e);
            }
        }
        return result;
    }

    /// <summary>The header's <c>__metadata__</c> (string to string; empty when there is none), without reading the tensors' data.</summary>
    public static Dictionary<string, string> ReadMetadata(string path)
    {
        byte[] bytes;
        if (!File.Exists(path))
            throw new FileNotFoundException($"safetensors file '{path}' does not exist", path);
        using (var stream = File.OpenRead(path))
        {
            Span<byte> length = stackalloc byte[8];
            if (stream.Length < 8 || stream.ReadAtLeast(length, 8, throwOnEndOfStream: false) < 8)
                throw new InvalidDataException($"'{path}' is not a safetensors file: {stream.Length} bytes, too short for the 8-byte header length");
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(length);
            if (headerLength > (ulong)(stream.Length - 8))
                throw new InvalidDataException($"'{path}': the header claims {headerLength} bytes but the file has {stream.Length - 8} after the length (truncated?)");
            bytes = new byte[8 + (int)headerLength];
            length.CopyTo(bytes);
            stream.ReadExactly(bytes.AsSpan(8));
        }
        var (header, _) = ParseHeader(path, bytes);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (header["__metadata__"] is JsonObject meta)
        {
            foreach (var (key, value) in meta)
            {
                result[key] = value is JsonValue v && v.TryGetValue(out string? text) ? text
                    : throw new InvalidDataException($"'{path}': metadata entry '{key}' is not a string");
            }
        }
        return result;
    }

    private static byte[] ReadFile(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"safetensors file '{path}' does not exist", path);
        return File.ReadAllBytes(path);
    }

    /// <summary>The JSON header of a file's bytes (at least the length and the header) and its length.</summary>
    private static (JsonObject Header, int Length) ParseHeader(string path, byte[] bytes)
    {
        if (bytes.Length < 8)
            throw new InvalidDataException($"'{path}' is not a safetensors file: {bytes.Length} bytes, too short for the 8-byte header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > (ulong)(bytes.Length - 8))
            throw new InvalidDataException($"'{path}': the header claims {headerLength} bytes but the file has {bytes.Length - 8} after the length (truncated?)");
        try
        {
            var header = JsonNode.Parse(bytes.AsSpan(8, (int)headerLength))?.AsObject()
                ?? throw new InvalidDataException($"'{path}': the header is not a JSON object");
            return (header, (int)headerLength);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InvalidDataException($"'{path}': the header is not valid JSON ({e.Message})", e);
        }
    }
}
