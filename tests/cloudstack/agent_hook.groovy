// Runs a CloudStack libvirt XML transformer hook the way the KVM agent does, for many
// inputs in one JVM (JVM start-ups are the slow part), building the engine per call as the
// agent does.
//
// Usage: groovy agent_hook.groovy MANIFEST
// MANIFEST: one case a line, tab-separated: basedir, script, method, input file, output
// file, log file. The input is read as UTF-8; the String the start path would hand to
// createXML is written to the output file as UTF-8; the log file gets one record a line:
// LOGGER<TAB>LEVEL<TAB>CLASS-OF-MESSAGE<TAB>message (with \\, \n, \r, \t escaped).
//
// Emulated from apache/cloudstack:
// - plugins/hypervisors/kvm/src/main/java/com/cloud/hypervisor/kvm/resource/LibvirtKvmAgentHook.java
//   (constructor: a GroovyScriptEngine rooted at the base dir if the script is readable;
//   handle(): gse.run(script, binding) cast to GroovyObject, null -> the argument,
//   invokeMethod(method, {logger, arg}), MissingMethodExceptionNoStack -> the argument);
// - .../resource/wrapper/LibvirtStartCommandWrapper.java, performXmlTransformHook():
//   a new hook per start (LibvirtComputingResource.getTransformer()), the result cast to
//   String, null or any Exception -> the XML unchanged. An Error is not caught there: here it
//   is recorded as UNCAUGHT (the agent's start would fail) and no output is written.

import org.codehaus.groovy.runtime.metaclass.MissingMethodExceptionNoStack

class RecordingLogger {
    final String name
    final Writer log

    RecordingLogger(String name, Writer log) {
        this.name = name
        this.log = log
    }

    private void record(String level, Object message) {
        String cls = message == null ? 'null' : message.getClass().getName()
        String text = String.valueOf(message)
        text = text.replace('\\', '\\\\').replace('\n', '\\n').replace('\r', '\\r').replace('\t', '\\t')
        log.write(name + '\t' + level + '\t' + cls + '\t' + text + '\n')
        log.flush()
    }

    // The log4j Logger methods a hook may call.
    void trace(Object m) { record('TRACE', m) }
    void debug(Object m) { record('DEBUG', m) }
    void info(Object m) { record('INFO', m) }
    void warn(Object m) { record('WARN', m) }
    void error(Object m) { record('ERROR', m) }
    void fatal(Object m) { record('FATAL', m) }
    void debug(Object m, Throwable t) { record('DEBUG', String.valueOf(m) + ' ' + t) }
    void info(Object m, Throwable t) { record('INFO', String.valueOf(m) + ' ' + t) }
    void warn(Object m, Throwable t) { record('WARN', String.valueOf(m) + ' ' + t) }
    void error(Object m, Throwable t) { record('ERROR', String.valueOf(m) + ' ' + t) }
}

/** LibvirtKvmAgentHook: constructor and handle(). */
class AgentHook {
    final String script
    final String method
    final GroovyScriptEngine gse
    final RecordingLogger logger

    AgentHook(String path, String script, String method, RecordingLogger logger) {
        this.script = script
        this.method = method
        this.logger = logger
        File full = new File(path, script)
        if (!full.canRead()) {
            logger.warn("Groovy script '" + full.toString() + "' is not available. Transformations will not be applied.")
            this.gse = null
        } else {
            this.gse = new GroovyScriptEngine(path)
        }
    }

    Object handle(Object arg) {
        if (gse == null) {
            logger.warn('Groovy scripting engine is not initialized. Data transformation skipped.')
            return arg
        }
        GroovyObject cls = (GroovyObject) gse.run(script, new Binding())
        if (cls == null) {
            logger.warn("Groovy object is not received from script '" + script + "'.")
            return arg
        }
        Object[] params = [logger, arg] as Object[]
        try {
            return cls.invokeMethod(method, params)
        } catch (MissingMethodExceptionNoStack e) {
            logger.error('Error occurred when calling method from groovy script, {}', e)
            return arg
        }
    }
}

/** LibvirtStartCommandWrapper.performXmlTransformHook(). */
String performXmlTransformHook(String initial, String basedir, String script, String method, Writer log) {
    RecordingLogger wrapperLogger = new RecordingLogger('LibvirtStartCommandWrapper', log)
    String result
    try {
        AgentHook t = new AgentHook(basedir, script, method, new RecordingLogger('LibvirtKvmAgentHook', log))
        result = (String) t.handle(initial)
        if (result == null) {
            wrapperLogger.warn('Libvirt XML transformer returned NULL, will use XML specification unchanged.')
            result = initial
        }
    } catch (Exception e) {
        wrapperLogger.warn('Exception occurred when handling LibVirt XML transformer hook: {}', e)
        result = initial
    }
    return result
}

// The agent starts VMs on a pool of worker threads: so does the driver (HOOK_THREADS, default 4),
// which also keeps the many cases of one test run short.
int threads = (System.getenv('HOOK_THREADS') ?: '4') as int
def pool = java.util.concurrent.Executors.newFixedThreadPool(threads)
def jobs = []
for (line in new File(args[0]).readLines('UTF-8')) {
    if (!line) {
        continue
    }
    def (basedir, script, method, input, output, logPath) = line.split('\t') as List
    jobs << pool.submit({
        Writer log = new OutputStreamWriter(new FileOutputStream(logPath), 'UTF-8')
        try {
            String xml = new File(input).getText('UTF-8')
            String result = performXmlTransformHook(xml, basedir, script, method, log)
            new File(output).withOutputStream { it.write(result.getBytes('UTF-8')) }
        } catch (Throwable t) {
            new RecordingLogger('driver', log).error('UNCAUGHT ' + t)
        } finally {
            log.close()
        }
        return null
    } as java.util.concurrent.Callable)
}
jobs.each { it.get() }
pool.shutdown()
