namespace AutoResearch.Optim;

/// <summary>The optimizer groups of SPEC §6.</summary>
public enum ParameterGroup
{
    LmHead,
    Embedding,
    ValueEmbedding,
    ResidLambdas,
    X0Lambdas,
    Muon,
}
