/**
 * The device thread's entry (serve.ts starts it as a worker): the device
 * thread of host/worker.ts, answering the control interface's commands
 * with control/commands.ts (the host layer does not import the control
 * layer; this entry joins them).
 */
import { answerCommand } from '../control/commands.js';
import { runDeviceThread } from '../host/worker.js';

await runDeviceThread(answerCommand);
