using AutoResearch.Hub.Load;

// hub-load: the hub under many agents at once, on loopback, with the server as its own process. Writes a Markdown report.
var settings = LoadSettings.Parse(args);
// 200 agents and 20 readers at once: threads enough that the client's own pool never adds to the times it measures.
ThreadPool.SetMinThreads(256, 256);
if (settings is null)
    return 2;
if (settings.Screenshots is null)
    Console.WriteLine($"hub-load: {settings.Agents} agents x ({settings.Posts} posts + {settings.Pushes} pushes + {settings.Reads} reads) + {settings.DashboardReaders} dashboard readers");

string work = Path.Combine(Path.GetTempPath(), "hub-load-" + Guid.NewGuid().ToString("N"));
Directory.CreateDirectory(work);
try
{
    if (settings.Screenshots is { } screenshots)
        return await DashboardScreenshots.RunAsync(screenshots, work);
    var run = await LoadRun.RunAsync(settings, work);
    var leaves = await LeavesBench.RunAsync(settings, Path.Combine(work, "leaves"));
    string markdown = Report.Write(settings, run, leaves);
    Console.WriteLine(markdown);
    if (settings.Out is { } output)
    {
        string tmp = output + ".tmp";
        await File.WriteAllTextAsync(tmp, markdown);
        File.Move(tmp, output, overwrite: true);
        Console.WriteLine($"hub-load: wrote {output}");
    }
    return run.Lost == 0 && run.Errors.IsEmpty ? 0 : 1;
}
finally
{
    try
    {
        Directory.Delete(work, recursive: true);
    }
    catch (IOException)
    {
    }
}
