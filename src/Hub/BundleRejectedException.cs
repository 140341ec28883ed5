namespace AutoResearch.Hub;

/// <summary>A pushed bundle that cannot be stored; the message says why, for a 400 answer.</summary>
public sealed class BundleRejectedException(string message) : Exception(message);
