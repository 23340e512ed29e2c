package io.blip2stream.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code java -jar blip2-stream.jar <command>}: the one entry point. Errors a user can cause (a missing file, an
 * unreadable image, an unknown option, a folder without weights) print one line on stderr and exit non-zero.
 */
@Command(name = "blip2-stream", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "BLIP-2 captioning, visual question answering and image embeddings on the JVM.",
        footer = {"", "Run 'java -jar blip2-stream.jar COMMAND --help' for a command's options. To try the service: `serve` "
                + "(with no Kafka configured it starts one in-process), then, from another terminal, "
                + "`produce --task caption --image FILE --wait`, or open http://localhost:8080/."},
        subcommands = {ServeCommand.class, CaptionCommand.class, AskCommand.class, MatchCommand.class, EmbedCommand.class,
                ProduceCommand.class, LoadCommand.class, BenchCommand.class, SyntheticCommand.class, TrainCommand.class,
                EvaluateCommand.class, ScenesCommand.class, BrokerCommand.class, CertsCommand.class,
                CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    /** Exit status of a usage or input error. */
    static final int USAGE = 2;
    /** Exit status of a failure while running. */
    static final int FAILED = 1;

    public static void main(String[] args) {
        System.exit(run(args));
    }

    public static int run(String... args) {
        CommandLine cli = new CommandLine(new Main());
        cli.setOverwrittenOptionsAllowed(true); // a later option wins: a scenario file (@FILE) and then overrides
        cli.setParameterExceptionHandler((ex, a) -> {
            System.err.println("error: " + UsageErrors.explain(ex, a));
            return USAGE;
        });
        cli.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            System.err.println("error: " + describe(ex));
            return ex instanceof UserError ? USAGE : FAILED;
        });
        return cli.execute(args);
    }

    static String describe(Throwable ex) {
        String m = ex.getMessage();
        if (m == null || m.isBlank()) {
            m = ex.getClass().getSimpleName();
        }
        return m.replace('\n', ' ');
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.err);
    }

    /** A problem with what the user gave: one line, exit status 2. */
    static final class UserError extends RuntimeException {
        UserError(String message) {
            super(message);
        }
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"blip2-stream " + (v == null ? "dev" : v)};
        }
    }
}
