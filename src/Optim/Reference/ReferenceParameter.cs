namespace AutoResearch.Optim.Reference;

/// <summary>One parameter of the CPU reference optimizer: its reference name, shape (rows × cols, out × in) and fp64 values and gradient.</summary>
public sealed class ReferenceParameter(string name, int rows, int cols)
{
    public string Name { get; } = name;

    public int Rows { get; } = rows;

    public int Cols { get; } = cols;

    public double[] Value { get; } = new double[(long)rows * cols];

    public double[] Gradient { get; } = new double[(long)rows * cols];
}
