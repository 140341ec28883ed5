namespace AutoResearch.Native;

/// <summary>Matrix element types the GEMMs take.</summary>
public enum ElementType
{
    F32,
    Bf16,
}
