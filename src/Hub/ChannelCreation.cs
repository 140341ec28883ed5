namespace AutoResearch.Hub;

/// <summary>What became of a request to create a channel.</summary>
public enum ChannelCreation
{
    Created,
    Exists,
    HubFull,
    AgentLimit,
}
