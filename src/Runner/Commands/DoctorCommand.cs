using System.CommandLine;

namespace AutoResearch.Runner;

/// <summary>`autoresearch doctor`: what this machine has for training (GPU, driver, CUDA libraries) and a quick check of each.</summary>
public static class DoctorCommand
{
    public static Command Create()
    {
        var command = new Command("doctor", "Report the GPU, driver, CUDA/NVRTC/cuBLAS versions and memory; compile a test kernel and time a bf16 GEMM.");
        command.SetAction(_ =>
        {
            Console.WriteLine("doctor: not yet implemented");
            return 1;
        });
        return command;
    }
}
