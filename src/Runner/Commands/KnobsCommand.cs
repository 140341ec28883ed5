using System.CommandLine;
using Spectre.Console;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch knobs`: every knob of <see cref="Hyperparameters"/> (what <c>train --set Name=Value</c>, <c>profile --set</c>
/// and <c>parity --set</c> take) with its type, default, range and what it does.
/// </summary>
public static class KnobsCommand
{
    /// <summary>Columns of the table when the output is not a terminal: wide enough for each knob to fit on one line.</summary>
    public const int RedirectedWidth = 220;

    public static Command Create()
    {
        var command = new Command("knobs", "List every knob (for train/profile/parity --set Name=Value) with its type, default, range and description.");
        command.SetAction(_ =>
        {
            if (Console.IsOutputRedirected)
                AnsiConsole.Console.Profile.Width = RedirectedWidth; // a pipe or file would get 80 columns: rows wrapped several times
            Run(AnsiConsole.Console);
            return 0;
        });
        return command;
    }

    /// <summary>Writes the table of knobs, in declaration order, and a line on how to set them.</summary>
    public static void Run(IAnsiConsole console)
    {
        ArgumentNullException.ThrowIfNull(console);
        var table = new Table().Title("Knobs (src/Runner/Hyperparameters.cs)").AddColumns("name", "type", "default", "range", "description");
        foreach (var knob in Knobs.All)
        {
            table.AddRow(Markup.Escape(knob.Name), Knobs.TypeName(knob.Type), Markup.Escape(knob.Default), Markup.Escape(knob.Range),
                Markup.Escape(knob.Description));
        }
        console.Write(table);
        console.WriteLine("Set any of them for one run: autoresearch train --set Name=Value [--set Name=Value ...] (also profile and parity).");
    }
}
