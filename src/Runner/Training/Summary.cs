using System.Globalization;

namespace AutoResearch.Runner.Training;

/// <summary>The end-of-run block of SPEC §9: a line "---", then one "key: value" line per figure, padded so agents can grep them.</summary>
public sealed record Summary(double ValBpb, double TrainingSeconds, double TotalSeconds, double PeakVramMb, double MfuPercent,
    double TotalTokensM, int NumSteps, double NumParamsM, int Depth)
{
    public string Format()
    {
        var c = CultureInfo.InvariantCulture;
        string Line(string key, string value) => $"{key + ":",-18}{value}";
        return string.Join('\n',
            "---",
            Line("val_bpb", ValBpb.ToString("F6", c)),
            Line("training_seconds", TrainingSeconds.ToString("F1", c)),
            Line("total_seconds", TotalSeconds.ToString("F1", c)),
            Line("peak_vram_mb", PeakVramMb.ToString("F1", c)),
            Line("mfu_percent", MfuPercent.ToString("F2", c)),
            Line("total_tokens_M", TotalTokensM.ToString("F1", c)),
            Line("num_steps", NumSteps.ToString(c)),
            Line("num_params_M", NumParamsM.ToString("F1", c)),
            Line("depth", Depth.ToString(c)));
    }
}
