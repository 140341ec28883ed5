namespace AutoResearch.Model.Checkpoint;

/// <summary>One tensor of a safetensors file: name, element type as written ("F32" or "BF16"), shape, and values as fp32.</summary>
public sealed record SafeTensor(string Name, string Dtype, long[] Shape, float[] Values)
{
    public long Count => Shape.Aggregate(1L, (a, b) => a * b);
}
