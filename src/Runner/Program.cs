using AutoResearch.Runner;

return CliErrors.Invoke(CommandLineRoot.Create(), args);
