using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace AutoResearch.Testing;

/// <summary>
/// A real HTTP/1.1 server on 127.0.0.1 (an ephemeral port) for the download tests. It serves the given files under
/// <see cref="BaseUrl"/>, and for each file first plays the faults scripted for it (<see cref="Script"/>), one per request.
/// One request per connection (<c>Connection: close</c>). It stops by itself after <c>maxRequests</c> requests or
/// <c>lifetime</c>, whichever comes first, so a test that goes wrong cannot leave it running.
/// </summary>
public sealed class LoopbackShardServer : IDisposable
{
    private const string Folder = "/data/";
    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private readonly IReadOnlyDictionary<string, byte[]> files;
    private readonly ConcurrentDictionary<string, ConcurrentQueue<ShardFault>> scripts = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> requests = new();
    private readonly CancellationTokenSource stop;
    private readonly Task acceptLoop;

    public LoopbackShardServer(IReadOnlyDictionary<string, byte[]> files, int maxRequests = 64, TimeSpan? lifetime = null)
    {
        this.files = files;
        stop = new CancellationTokenSource(lifetime ?? TimeSpan.FromSeconds(90));
        listener.Start();
        BaseUrl = new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}{Folder}");
        acceptLoop = AcceptAsync(maxRequests);
    }

    /// <summary>The folder the files are served from, ending in '/'.</summary>
    public Uri BaseUrl { get; }

    /// <summary>The file names requested, in arrival order.</summary>
    public IReadOnlyList<string> Requests => [.. requests];

    public int RequestCount(string fileName) => requests.Count(r => r == fileName);

    /// <summary>The next requests for <paramref name="fileName"/> get these faults, in order; later ones get the file.</summary>
    public void Script(string fileName, params ShardFault[] faults)
    {
        var queue = scripts.GetOrAdd(fileName, _ => new ConcurrentQueue<ShardFault>());
        foreach (var fault in faults)
            queue.Enqueue(fault);
    }

    /// <summary>A base address on 127.0.0.1 where nothing listens: every connection is refused.</summary>
    public static Uri RefusingBaseUrl()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return new Uri($"http://127.0.0.1:{port}{Folder}");
    }

    private async Task AcceptAsync(int maxRequests)
    {
        var connections = new List<Task>();
        try
        {
            for (int served = 0; served < maxRequests; served++)
            {
                var client = await listener.AcceptTcpClientAsync(stop.Token);
                connections.Add(ServeAsync(client));
            }
        }
        catch (OperationCanceledException)
        {
            // lifetime over or disposed
        }
        finally
        {
            listener.Stop();
        }
        await Task.WhenAll(connections);
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var name = await ReadRequestAsync(stream);
                requests.Enqueue(name);
                var fault = scripts.TryGetValue(name, out var queue) && queue.TryDequeue(out var next) ? next : ShardFault.None;
                if (!files.TryGetValue(name, out var body))
                    fault = ShardFault.NotFound;
                switch (fault)
                {
                    case ShardFault.None:
                        await WriteAsync(stream, "200 OK", body!, body!.Length);
                        break;
                    case ShardFault.ServerError:
                        await WriteAsync(stream, "500 Internal Server Error", "boom"u8.ToArray(), 4);
                        break;
                    case ShardFault.NotFound:
                        await WriteAsync(stream, "404 Not Found", "no such file"u8.ToArray(), 12);
                        break;
                    case ShardFault.CutOff:
                        // Announces the whole file, sends half of it, then closes normally.
                        await WriteAsync(stream, "200 OK", body![..(body.Length / 2)], body.Length);
                        break;
                    case ShardFault.NotParquet:
                        await WriteAsync(stream, "200 OK", "<html>rate limited, try later</html>"u8.ToArray(), 36);
                        break;
                    case ShardFault.Reset:
                        Reset(client.Client);
                        break;
                    case ShardFault.ResetMidBody:
                        // The client reads what was sent before the RST (Linux delivers queued data first), then the reset.
                        await WriteAsync(stream, "200 OK", body![..(body.Length / 2)], body.Length);
                        Reset(client.Client);
                        break;
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
                // the client went away, or the server is stopping; the test's assertions say whether that was expected
            }
        }
    }

    /// <summary>
    /// Linger on with a zero timeout, then close the socket itself: the peer gets RST instead of FIN. (Disposing the TcpClient
    /// would shut the socket down first, which sends FIN, and the client would see a clean end of stream.)
    /// </summary>
    private static void Reset(Socket socket)
    {
        socket.LingerState = new LingerOption(true, 0);
        socket.Close();
    }

    private async Task<string> ReadRequestAsync(NetworkStream stream)
    {
        var head = new StringBuilder();
        var buffer = new byte[1024];
        while (!head.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            int read = await stream.ReadAsync(buffer, stop.Token);
            if (read == 0 || head.Length > 16_384)
                throw new IOException("incomplete request");
            head.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }
        // "GET /data/shard_00000.parquet HTTP/1.1"
        var target = head.ToString().Split(' ', 3)[1];
        return target.StartsWith(Folder, StringComparison.Ordinal) ? target[Folder.Length..] : target;
    }

    private async Task WriteAsync(NetworkStream stream, string status, byte[] body, long contentLength)
    {
        var headers = $"HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {contentLength}\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(headers), stop.Token);
        await stream.WriteAsync(body, stop.Token);
        await stream.FlushAsync(stop.Token);
    }

    public void Dispose()
    {
        stop.Cancel();
        acceptLoop.GetAwaiter().GetResult();
        stop.Dispose();
    }
}
