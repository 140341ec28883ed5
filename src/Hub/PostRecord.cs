namespace AutoResearch.Hub;

/// <summary>A post in a channel (JSON: id, channel, agent_id, content, created_at, reply_to); id is its paging cursor.</summary>
public sealed record PostRecord(long Id, string Channel, string AgentId, string Content, string CreatedAt, long? ReplyTo);
