using AutoResearch.Native;

namespace AutoResearch.Model.Gpu;

/// <summary>
/// The model's parameters on the device, in the reference's names and order (weight shapes out × in), carved out of three
/// allocations: fp32 master values, fp32 gradients and bf16 copies (what the GEMMs and kernels read), all at the same
/// element offsets (each tensor aligned to 64 elements for 16-byte accesses).
/// </summary>
public sealed class GpuParameters : IDisposable
{
    private readonly Dictionary<string, Entry> _byName = new(StringComparer.Ordinal);
    private readonly CudaDevice _device;

    public GpuParameters(CudaDevice device, ModelShape shape)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(shape);
        _device = device;
        Shape = shape;
        long offset = 0;
        var entries = new List<Entry>();
        foreach (var (name, rows, cols) in shape.ParameterShapes())
        {
            var entry = new Entry(name, rows, cols, offset);
            entries.Add(entry);
            _byName.Add(name, entry);
            offset += ((long)rows * cols + 63) / 64 * 64;
        }
        Entries = entries;
        TotalElements = offset;
        Master = device.Allocate<float>(offset, "parameters (fp32 master)");
        Gradients = device.Allocate<float>(offset, "gradients (fp32)");
        Bf16Copies = device.Allocate<ushort>(offset, "parameters (bf16 copies)");
        Gradients.Fill(0f);
    }

    /// <summary>Name, shape (rows × cols) and element offset of one tensor.</summary>
    public sealed record Entry(string Name, int Rows, int Cols, long Offset)
    {
        public long Count => (long)Rows * Cols;
    }

    public ModelShape Shape { get; }

    public IReadOnlyList<Entry> Entries { get; }

    public long TotalElements { get; }

    /// <summary>Parameter count (without the alignment padding).</summary>
    public long Count => Entries.Sum(e => e.Count);

    public DeviceBuffer<float> Master { get; }

    public DeviceBuffer<float> Gradients { get; }

    public DeviceBuffer<ushort> Bf16Copies { get; }

    public Entry this[string name] => _byName.TryGetValue(name, out var e) ? e
        : throw new KeyNotFoundException($"the model has no parameter named '{name}'");

    public ulong MasterOf(string name) => Master.At(this[name].Offset);

    public ulong GradientOf(string name) => Gradients.At(this[name].Offset);

    public ulong Bf16Of(string name) => Bf16Copies.At(this[name].Offset);

    /// <summary>Copies host values into a tensor's fp32 master (the bf16 copies follow at <see cref="RefreshBf16"/>).</summary>
    public void Upload(string name, ReadOnlySpan<float> values) => UploadTo(Master, name, values);

    /// <summary>
    /// Copies host values into one tensor's slot of a flat buffer with this layout (masters or gradients), and returns once
    /// they are on the device, so that work on any stream reads them (<see cref="DeviceBuffer{T}.CopyFrom(ReadOnlySpan{T}, long)"/>).
    /// </summary>
    public void UploadTo(DeviceBuffer<float> buffer, string name, ReadOnlySpan<float> values)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        var e = this[name];
        if (values.Length != e.Count)
            throw new ArgumentException($"parameter '{name}' has {e.Rows}×{e.Cols} = {e.Count} elements; {values.Length} were given");
        buffer.CopyFrom(values, e.Offset);
    }

    public float[] Download(DeviceBuffer<float> buffer, string name)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        var e = this[name];
        var result = new float[e.Count];
        buffer.CopyTo(result, e.Offset);
        return result;
    }

    /// <summary>
    /// SPEC §5's initialisation from <paramref name="seed"/> (<see cref="ParameterInitializer"/>, the same values as the CPU
    /// reference's), uploaded to the masters; call <see cref="RefreshBf16"/> after.
    /// </summary>
    public void InitialiseLikeSpec(int seed) => Initialise(InitialValues(Shape, seed));

    /// <summary>
    /// SPEC §5's initial values as the masters take them (fp32), drawn on the host: what <see cref="InitialiseLikeSpec"/> uploads,
    /// for a caller that draws them on another thread while the device is set up.
    /// </summary>
    public static Dictionary<string, float[]> InitialValues(ModelShape shape, int seed)
        => ParameterInitializer.LikeSpecSingle(shape, seed);

    /// <summary>Uploads <paramref name="values"/> (every tensor, by reference name) to the masters; call <see cref="RefreshBf16"/> after.</summary>
    public void Initialise(IReadOnlyDictionary<string, float[]> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        foreach (var entry in Entries)
        {
            if (!values.TryGetValue(entry.Name, out var tensor))
                throw new ArgumentException($"no initial values for {entry.Name}", nameof(values));
            Upload(entry.Name, tensor);
        }
    }

    /// <summary>bf16 copies ← fp32 masters, for every tensor (after an optimizer step or an upload).</summary>
    public void RefreshBf16(Elementwise elementwise, CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(elementwise);
        elementwise.CastToBf16(Master.Pointer, TotalElements, Bf16Copies.Pointer, stream);
    }

    public void ZeroGradients(CudaStream stream) => Gradients.FillBytes(0, stream);

    /// <summary>
    /// The fp32 masters, copied to the host once every queued kernel is done: what <see cref="RestoreMasters"/> puts back, for a
    /// caller that undoes optimizer steps (`profile --fixed-weights`).
    /// </summary>
    public float[] DownloadMasters() => Master.ToArray();

    /// <summary>
    /// Masters ← <paramref name="masters"/> (from <see cref="DownloadMasters"/>; the copy waits for every queued kernel, so it
    /// lands after an optimizer step still running), then the bf16 copies from them on <paramref name="stream"/>.
    /// </summary>
    public void RestoreMasters(ReadOnlySpan<float> masters, Elementwise elementwise, CudaStream stream)
    {
        if (masters.Length != TotalElements)
            throw new ArgumentException($"the masters hold {TotalElements} elements (alignment padding included); {masters.Length} were given", nameof(masters));
        Master.CopyFrom(masters);
        RefreshBf16(elementwise, stream);
    }

    public void Dispose()
    {
        Master.Dispose();
        Gradients.Dispose();
        Bf16Copies.Dispose();
    }
}
