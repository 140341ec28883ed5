namespace AutoResearch.Hub;

/// <summary>A commit the hub stores (JSON: hash, parents, agent_id, message, created_at).</summary>
public sealed record CommitRecord(string Hash, string[] Parents, string AgentId, string Message, string CreatedAt);
