namespace AutoResearch.Native;

/// <summary>
/// Times named regions of work on a stream with pairs of device events, and sums them per name: a per-kernel breakdown
/// without a profiler. Disabled, it costs nothing. Events are recycled between reports.
/// </summary>
public sealed class StreamProfiler : IDisposable
{
    private readonly CudaDevice _device;
    private readonly CudaStream _stream;
    private readonly List<(string Name, CudaEvent Start, CudaEvent End, double Flops, double Bytes)> _open = [];
    private readonly Stack<CudaEvent> _pool = new();

    public StreamProfiler(CudaDevice device, CudaStream stream)
    {
        _device = device;
        _stream = stream;
    }

    public bool Enabled { get; set; }

    /// <summary>One row of a report: the total milliseconds of a name, its call count, and its FLOP and byte counts.</summary>
    public sealed record Row(string Name, double Milliseconds, int Calls, double Flops, double Bytes)
    {
        public double TeraflopsPerSecond => Milliseconds > 0 ? Flops / (Milliseconds * 1e-3) / 1e12 : 0;

        public double TerabytesPerSecond => Milliseconds > 0 ? Bytes / (Milliseconds * 1e-3) / 1e12 : 0;
    }

    /// <summary>
    /// Starts a timed region: <c>using (profiler.Region("attention forward", flops)) { ... }</c>. A struct, so a disabled
    /// profiler allocates nothing.
    /// </summary>
    public Scope Region(string name, double flops = 0, double bytes = 0)
    {
        if (!Enabled)
            return default;
        var start = Rent();
        start.Record(_stream);
        return new Scope(this, name, start, flops, bytes);
    }

    private void Close(string name, CudaEvent start, double flops, double bytes)
    {
        var end = Rent();
        end.Record(_stream);
        _open.Add((name, start, end, flops, bytes));
    }

    /// <summary>The end of a region (records the closing event on dispose).</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly StreamProfiler? _owner;
        private readonly string _name;
        private readonly CudaEvent? _start;
        private readonly double _flops;
        private readonly double _bytes;

        internal Scope(StreamProfiler owner, string name, CudaEvent start, double flops, double bytes)
        {
            _owner = owner;
            _name = name;
            _start = start;
            _flops = flops;
            _bytes = bytes;
        }

        public void Dispose() => _owner?.Close(_name, _start!, _flops, _bytes);
    }

    /// <summary>Waits for the stream, sums the recorded regions per name (largest first) and clears them.</summary>
    public IReadOnlyList<Row> Collect()
    {
        _stream.Synchronize();
        var rows = new Dictionary<string, Row>(StringComparer.Ordinal);
        foreach (var (name, start, end, flops, bytes) in _open)
        {
            double ms = CudaEvent.ElapsedMilliseconds(start, end);
            rows[name] = rows.TryGetValue(name, out var r)
                ? r with { Milliseconds = r.Milliseconds + ms, Calls = r.Calls + 1, Flops = r.Flops + flops, Bytes = r.Bytes + bytes }
                : new Row(name, ms, 1, flops, bytes);
            _pool.Push(start);
            _pool.Push(end);
        }
        _open.Clear();
        return rows.Values.OrderByDescending(r => r.Milliseconds).ToList();
    }

    private CudaEvent Rent() => _pool.Count > 0 ? _pool.Pop() : new CudaEvent(_device);

    public void Dispose()
    {
        foreach (var (_, start, end, _, _) in _open)
        {
            start.Dispose();
            end.Dispose();
        }
        _open.Clear();
        while (_pool.Count > 0)
            _pool.Pop().Dispose();
    }
}
