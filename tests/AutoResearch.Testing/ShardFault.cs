namespace AutoResearch.Testing;

/// <summary>What <see cref="LoopbackShardServer"/> does to one request instead of serving the file.</summary>
public enum ShardFault
{
    /// <summary>Serve the file.</summary>
    None,

    /// <summary>HTTP 500 with a short body.</summary>
    ServerError,

    /// <summary>HTTP 404.</summary>
    NotFound,

    /// <summary>Content-Length of the whole file, half of the bytes, then the connection closes.</summary>
    CutOff,

    /// <summary>
    /// The connection is reset (RST) after the request was read, before any response. HttpClient may retry such a request by
    /// itself on a new connection, so the server can see one request more than the client made attempts.
    /// </summary>
    Reset,

    /// <summary>Content-Length of the whole file, half of the bytes, then the connection is reset (RST).</summary>
    ResetMidBody,

    /// <summary>HTTP 200 with a body that is not Parquet (an HTML page).</summary>
    NotParquet,
}
