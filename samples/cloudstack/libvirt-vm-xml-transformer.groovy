// CloudStack KVM agent hook: lays out every VM's domain XML with planner before it starts.
//
// The agent (4.14 and later) runs this file before each VM start, with a GroovyScriptEngine
// rooted at agent.hooks.basedir, and calls transform(logger, xml) on the object the last
// line returns. Install: copy this file to /etc/cloudstack/agent/hooks/ on each KVM host
// (see the README's "CloudStack" section). Edits take effect at the next VM start.
//
// It pipes the XML through `planner relayout -` and returns planner's output. It fails
// open: if planner is missing, fails, hangs or prints nothing, it logs one warning with the
// reason and returns the XML unchanged, so a VM never fails to start because of planner.
//
// Plain Groovy for Groovy 2.4 and 3 on Java 11/17: the logic lives in a class (top-level
// methods of a script whose file name has hyphens crash Groovy 2.4 on Java 17 with a
// ClassFormatError), no static calls on Java interfaces, the logger is untyped and gets
// plain Strings only.

// ---- settings --------------------------------------------------------------------------

// planner's command: a name looked up on the agent's PATH, or an absolute path.
def plannerCommand = 'planner'
// Extra arguments for `planner relayout`, e.g. ['--acpi-index'] or ['--nic-slots', '12'].
def plannerArgs = []
// Seconds planner may take before it is killed and the XML is used unchanged.
def timeoutSeconds = 20
// VMs whose whole name matches this regular expression are left alone; empty: none is.
// e.g. /[rsv]-\d+-VM/ for the system VMs (router, secondary storage, console proxy).
def skipVmNames = ''

// ---- the hook --------------------------------------------------------------------------

class PlannerXmlTransformer {
    private static final java.util.regex.Pattern NAME = ~/<name>\s*([^<]*?)\s*<\/name>/
    private static final int MAX_LINE = 400

    final String planner
    final List<String> args
    final long timeoutMillis
    final java.util.regex.Pattern skip
    final String skipError

    PlannerXmlTransformer(planner, args, timeoutSeconds, skipVmNames) {
        this.planner = String.valueOf(planner)
        List<String> strings = []
        for (a in (args ?: [])) {
            strings.add(String.valueOf(a))
        }
        this.args = strings
        this.timeoutMillis = (long) (new BigDecimal(String.valueOf(timeoutSeconds)) * 1000)
        java.util.regex.Pattern pattern = null
        String error = null
        String regex = skipVmNames == null ? '' : String.valueOf(skipVmNames)
        if (regex) {
            try {
                pattern = java.util.regex.Pattern.compile(regex)
            } catch (Exception e) {
                error = 'invalid skipVmNames pattern: ' + oneLine(e.getMessage())
            }
        }
        this.skip = pattern
        this.skipError = error
    }

    /** The agent's entry point: the XML laid out by planner, or {@code xml} unchanged. */
    def transform(logger, xml) {
        if (!(xml instanceof String)) {
            logger.warn('planner hook: no XML string given; left unchanged')
            return xml
        }
        String name = vmName((String) xml)
        String vm = 'VM ' + (name == null ? '(no name)' : name)
        try {
            if (skipError != null) {
                logger.warn('planner hook: ' + vm + ': XML left unchanged: ' + skipError)
                return xml
            }
            if (skip != null && name != null && skip.matcher(name).matches()) {
                logger.info('planner hook: ' + vm + ': matches skipVmNames; XML left unchanged')
                return xml
            }
            long started = System.nanoTime()
            Map result = relayout((String) xml)
            if (result.error != null) {
                logger.warn('planner hook: ' + vm + ': XML left unchanged: ' + result.error)
                return xml
            }
            long ms = (long) ((System.nanoTime() - started) / 1000000L)
            logger.info('planner hook: ' + vm + ': laid out by planner in ' + ms + ' ms')
            return result.xml
        } catch (Throwable t) {
            logger.warn('planner hook: ' + vm + ': XML left unchanged: hook failed: ' + oneLine(String.valueOf(t)))
            return xml
        }
    }

    /** Runs `planner relayout ARGS -`: [xml: output] or [error: reason and planner's error line]. */
    private Map relayout(String xml) {
        List<String> command = [planner, 'relayout']
        command.addAll(args)
        command.add('-')
        Process process
        try {
            process = new ProcessBuilder(command).start()
        } catch (IOException e) {
            return [error: 'cannot run ' + planner + ': ' + oneLine(e.getMessage())]
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream()
        ByteArrayOutputStream err = new ByteArrayOutputStream()
        // stdin is written and stdout/stderr are read on their own threads: a domain larger
        // than a pipe buffer would otherwise deadlock the writer against planner's output.
        List<Thread> threads = [
            copy(new ByteArrayInputStream(xml.getBytes('UTF-8')), process.getOutputStream()),
            copy(process.getInputStream(), out),
            copy(process.getErrorStream(), err),
        ]
        long deadline = System.currentTimeMillis() + timeoutMillis
        boolean exited = process.waitFor(timeoutMillis, java.util.concurrent.TimeUnit.MILLISECONDS)
        if (!exited) {
            int killed = kill(process)
            join(threads, System.currentTimeMillis() + 2000L)
            return [error: 'planner did not finish within ' + seconds(timeoutMillis) + ' s; killed '
                    + killed + (killed == 1 ? ' process' : ' processes') + errorLine(err)]
        }
        if (!join(threads, Math.max(deadline, System.currentTimeMillis() + 2000L))) {
            return [error: 'planner exited ' + process.exitValue()
                    + ' but its output stayed open (a process it started?)' + errorLine(err)]
        }
        int code = process.exitValue()
        if (code != 0) {
            return [error: 'planner exited ' + code + errorLine(err)]
        }
        if (out.size() == 0) {
            return [error: 'planner printed nothing' + errorLine(err)]
        }
        return [xml: new String(out.toByteArray(), 'UTF-8')]
    }

    /** Kills the process and every process it started (instance calls only); how many. */
    private static int kill(Process process) {
        Set<Long> killed = new HashSet<Long>()
        for (int pass = 0; pass < 3; pass++) {
            List handles = descendants(process)
            if (handles.isEmpty()) {
                break
            }
            for (h in handles) {
                h.destroyForcibly()
                killed.add((Long) h.pid())
            }
        }
        List late = descendants(process)
        process.destroyForcibly()
        for (h in late) {
            h.destroyForcibly()
            killed.add((Long) h.pid())
        }
        process.waitFor(5, java.util.concurrent.TimeUnit.SECONDS)
        return killed.size() + 1
    }

    private static List descendants(Process process) {
        List handles = []
        try {
            Iterator it = process.toHandle().descendants().iterator()
            while (it.hasNext()) {
                handles.add(it.next())
            }
        } catch (Throwable ignored) {
            // Java 8 has no ProcessHandle: only the process itself can be killed.
        }
        return handles
    }

    private static Thread copy(InputStream from, OutputStream to) {
        Thread thread = new Thread({
            try {
                byte[] buffer = new byte[65536]
                int n
                while ((n = from.read(buffer)) >= 0) {
                    to.write(buffer, 0, n)
                }
            } catch (IOException ignored) {
                // planner closed its stdin early (it failed) or was killed: its exit tells why.
            } finally {
                try {
                    to.close()
                } catch (IOException ignored) {
                }
            }
        } as Runnable, 'planner-hook-io')
        thread.setDaemon(true)
        thread.start()
        return thread
    }

    private static boolean join(List<Thread> threads, long deadline) {
        for (t in threads) {
            long left = deadline - System.currentTimeMillis()
            if (left > 0) {
                t.join(left)
            }
            if (t.isAlive()) {
                return false
            }
        }
        return true
    }

    private static String errorLine(ByteArrayOutputStream err) {
        String text = new String(err.toByteArray(), 'UTF-8')
        String last = null
        for (line in text.split('\n')) {
            if (line.trim()) {
                last = line.trim()
            }
        }
        return last == null ? '' : ': ' + oneLine(last)
    }

    private static String seconds(long millis) {
        return new BigDecimal(millis).divide(new BigDecimal(1000)).stripTrailingZeros().toPlainString()
    }

    private static String oneLine(String text) {
        String line = String.valueOf(text).replaceAll('[\\r\\n\\t]+', ' ').trim()
        return line.length() > MAX_LINE ? line.substring(0, MAX_LINE) + '...' : line
    }

    private static String vmName(String xml) {
        java.util.regex.Matcher m = NAME.matcher(xml)
        return m.find() ? m.group(1) : null
    }
}

new PlannerXmlTransformer(plannerCommand, plannerArgs, timeoutSeconds, skipVmNames)
