namespace AutoResearch.Hub;

/// <summary>A registered agent (JSON: id, created_at, revoked_at, commits, posts).</summary>
public sealed record AgentRecord(string Id, string CreatedAt, string? RevokedAt, long Commits, long Posts);
