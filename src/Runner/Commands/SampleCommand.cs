using System.CommandLine;
using AutoResearch.Data;
using AutoResearch.Data.Tokenizer;
using AutoResearch.Model.Checkpoint;
using AutoResearch.Model.Cpu;
using AutoResearch.Runner.Sampling;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch sample`: text from a checkpoint (train --save) with the fp64 CPU reference forward, one token at a time:
/// the prompt after a BOS token, then up to --tokens tokens drawn by <see cref="TokenSampler"/>, stopping early at a BOS (the
/// end of a document). Fine for tiny models; a baseline-size checkpoint works but is slow. The model's shape, T included, comes
/// from the checkpoint (<see cref="CheckpointShape"/>); a checkpoint made with another tokenizer than the cache's is refused.
/// </summary>
public static class SampleCommand
{
    /// <summary>What one `sample` generates. SeqLen and WindowPattern: null to take the checkpoint's (the baseline's for an older checkpoint).</summary>
    public sealed record Request(string CheckpointPath, string Prompt, int Tokens, double Temperature, int TopK, int Seed, int? SeqLen, string? WindowPattern, CachePaths Cache);

    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Model weights written by `train --save` (.safetensors)", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "Text the generation continues", Required = true };
        var tokens = new Option<int>("--tokens") { Description = "Tokens to generate at most (fewer when the model ends the document)", DefaultValueFactory = _ => 64 };
        var temperature = new Option<double>("--temperature") { Description = "Softmax temperature; 0 = greedy (always the most likely token)", DefaultValueFactory = _ => 0.8 };
        var topK = new Option<int>("--top-k") { Description = "Draw among the k most likely tokens only; 0 = all", DefaultValueFactory = _ => 50 };
        var seed = new Option<int>("--seed") { Description = "Random seed: the same seed gives the same text", DefaultValueFactory = _ => 42 };
        var seqLen = new Option<int?>("--seq-len") { Description = "T the model was trained with (default: the checkpoint's; 2048 for a checkpoint that does not record it)" };
        var pattern = new Option<string?>("--window-pattern") { Description = $"Attention windows per layer as trained (S short, L full; the last layer is L; default: the checkpoint's, {Hyperparameters.Default.WindowPattern} for one that does not record it)" };
        var cache = new Option<string?>("--cache") { Description = "Cache folder whose tokenizer/ the model was trained with (see prepare)" };
        var command = new Command("sample", "Generate text from a checkpoint (train --save) on the CPU: --prompt, --tokens, --temperature (0 = greedy), --top-k, --seed.")
        {
            checkpoint, prompt, tokens, temperature, topK, seed, seqLen, pattern, cache,
        };
        command.SetAction((parse, cancel) =>
        {
            var request = new Request(parse.GetValue(checkpoint)!, parse.GetValue(prompt)!, parse.GetValue(tokens), parse.GetValue(temperature), parse.GetValue(topK),
                parse.GetValue(seed), parse.GetValue(seqLen), parse.GetValue(pattern), CachePaths.From(parse.GetValue(cache)));
            string text = Run(request, Console.Error, cancel);
            Console.WriteLine(request.Prompt + text);
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>Generates and returns the continuation of the prompt (without the prompt); one line about the model on <paramref name="log"/>.</summary>
    public static string Run(Request request, TextWriter log, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(log);
        if (request.Tokens < 1)
            throw new ArgumentException($"--tokens must be at least 1; got {request.Tokens}");
        if (!(request.Temperature >= 0) || double.IsInfinity(request.Temperature))
            throw new ArgumentException($"--temperature must be a finite number ≥ 0 (0 = greedy); got {request.Temperature}");
        if (request.TopK < 0)
            throw new ArgumentException($"--top-k must be ≥ 0 (0 = all tokens); got {request.TopK}");
        if (request.SeqLen < 1)
            throw new ArgumentException($"--seq-len must be at least 1; got {request.SeqLen}");
        if (Directory.Exists(request.CheckpointPath))
            throw new ArgumentException($"checkpoint '{request.CheckpointPath}' is a folder: give the .safetensors file `autoresearch train --save PATH` wrote");
        if (!File.Exists(request.CheckpointPath))
            throw new FileNotFoundException($"checkpoint '{request.CheckpointPath}' does not exist: write one with `autoresearch train --save PATH`", request.CheckpointPath);
        var tokenizer = TokenizerFiles.Load(request.Cache.Tokenizer);
        var info = ModelCheckpoint.ReadInfo(request.CheckpointPath);
        if (info.TokenizerHash is { } trainedWith)
        {
            string cacheHash = Convert.ToHexStringLower(TokenizerFiles.ContentHash(request.Cache.Tokenizer));
            if (!string.Equals(trainedWith, cacheHash, StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidDataException($"checkpoint '{request.CheckpointPath}' was trained with the tokenizer {trainedWith}, but the tokenizer in "
                    + $"{request.Cache.Tokenizer} is {cacheHash}: pass the --cache it was trained with");
            }
        }
        var tensors = SafeTensors.Read(request.CheckpointPath);
        var shape = CheckpointShape.Resolve(request.CheckpointPath, tensors, info, request.SeqLen, request.WindowPattern, []);
        if (shape.VocabSize != tokenizer.VocabSize)
            throw new InvalidDataException($"checkpoint '{request.CheckpointPath}' has a vocabulary of {shape.VocabSize} tokens but the tokenizer in {request.Cache.Tokenizer} has {tokenizer.VocabSize}: pass the --cache it was trained with");
        var parameters = ModelCheckpoint.Load(request.CheckpointPath, shape);

        var ids = new List<int> { tokenizer.BosId };
        ids.AddRange(tokenizer.Encode(request.Prompt));
        // Causal attention: padding after the context changes nothing before it, so one model of the longest context serves every step.
        int context = (int)Math.Min(shape.SeqLen, (long)ids.Count + request.Tokens - 1); // in long: --tokens may be as large as an int holds
        var model = new CpuGpt(shape with { SeqLen = context });
        foreach (var (name, values) in parameters)
            model.Parameters[name] = values;
        log.WriteLine($"sample: depth {shape.Depth}, width {shape.ModelDim}, vocabulary {shape.VocabSize}, T {shape.SeqLen}; "
            + $"temperature {request.Temperature}, top-k {request.TopK}, seed {request.Seed}; CPU fp64 reference");

        var random = new Random(request.Seed);
        var inputs = new int[context];
        var generated = new List<int>();
        for (int i = 0; i < request.Tokens; i++)
        {
            cancel.ThrowIfCancellationRequested();
            int length = Math.Min(ids.Count, context);
            Array.Clear(inputs);
            ids.CopyTo(ids.Count - length, inputs, 0, length);
            var logits = model.Logits(inputs, 1);
            int next = TokenSampler.Next(logits.AsSpan((length - 1) * shape.VocabSize, shape.VocabSize), request.Temperature, request.TopK, random);
            if (next == tokenizer.BosId)
                break;
            ids.Add(next);
            generated.Add(next);
        }
        return tokenizer.Decode(generated.ToArray());
    }
}
