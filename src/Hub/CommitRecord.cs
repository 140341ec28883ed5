namespace AutoResearch.Hub;

/// <summary>A commit the hub stores (JSON: seq, hash, parents, agent_id, message, created_at); seq is its paging cursor.</summary>
public sealed record CommitRecord(long Seq, string Hash, string[] Parents, string AgentId, string Message, string CreatedAt);
