namespace AutoResearch.Optim;

/// <summary>
/// The learning rates and betas of SPEC §6 and the group of each parameter by its reference name. Adam learning rates of
/// the matrices and embeddings are scaled by (model_dim/768)^−0.5; the lambdas' are not.
/// </summary>
public sealed record OptimizerSettings(
    int ModelDim,
    double UnembeddingLearningRate = 0.004,
    double EmbeddingLearningRate = 0.6,
    double ScalarLearningRate = 0.5,
    double MatrixLearningRate = 0.04,
    double AdamBeta1 = 0.8,
    double AdamBeta2 = 0.95,
    double MuonBeta2 = 0.95,
    double AdamEps = 1e-10,
    OptimizerPrecision Precision = OptimizerPrecision.Fp32)
{
    /// <summary>One Adam group's hyperparameters.</summary>
    public readonly record struct AdamHyper(double LearningRate, double Beta1, double Beta2, double Eps, double WeightDecay);

    public double WidthScale => Math.Pow(ModelDim / 768.0, -0.5);

    public double MuonLearningRate => MatrixLearningRate;

    public AdamHyper Adam(ParameterGroup group) => group switch
    {
        ParameterGroup.LmHead => new(UnembeddingLearningRate * WidthScale, AdamBeta1, AdamBeta2, AdamEps, 0),
        ParameterGroup.Embedding => new(EmbeddingLearningRate * WidthScale, AdamBeta1, AdamBeta2, AdamEps, 0),
        ParameterGroup.ValueEmbedding => new(EmbeddingLearningRate * WidthScale, AdamBeta1, AdamBeta2, AdamEps, 0),
        ParameterGroup.ResidLambdas => new(ScalarLearningRate * 0.01, AdamBeta1, AdamBeta2, AdamEps, 0),
        ParameterGroup.X0Lambdas => new(ScalarLearningRate, 0.96, AdamBeta2, AdamEps, 0),
        _ => throw new ArgumentOutOfRangeException(nameof(group), group, "not an Adam group"),
    };

    /// <summary>The group of a parameter by its reference name; an unknown name is an error.</summary>
    public ParameterGroup GroupOf(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name == "lm_head.weight")
            return ParameterGroup.LmHead;
        if (name == "transformer.wte.weight")
            return ParameterGroup.Embedding;
        if (name.StartsWith("value_embeds.", StringComparison.Ordinal) && name.EndsWith(".weight", StringComparison.Ordinal))
            return ParameterGroup.ValueEmbedding;
        if (name == "resid_lambdas")
            return ParameterGroup.ResidLambdas;
        if (name == "x0_lambdas")
            return ParameterGroup.X0Lambdas;
        if (name.StartsWith("transformer.h.", StringComparison.Ordinal) && name.EndsWith(".weight", StringComparison.Ordinal))
            return ParameterGroup.Muon;
        throw new ArgumentException($"parameter '{name}' belongs to no optimizer group (SPEC §6)", nameof(name));
    }
}
