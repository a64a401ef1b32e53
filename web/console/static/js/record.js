// Recording from the microphone with MediaRecorder, in a type the service decodes.

const TYPES = [
  ["audio/webm;codecs=opus", "webm"],
  ["audio/ogg;codecs=opus", "ogg"],
  ["audio/mp4", "m4a"],
];

/** Start recording; the returned stop() resolves to a File of what was recorded. */
export async function startRecording() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const [mimeType, extension] = TYPES.find(([type]) => MediaRecorder.isTypeSupported(type)) || ["", "webm"];
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : {});
  const chunks = [];
  recorder.ondataavailable = (event) => event.data.size && chunks.push(event.data);
  recorder.start(250);
  return {
    stop: () =>
      new Promise((resolve) => {
        recorder.onstop = () => {
          stream.getTracks().forEach((track) => track.stop());
          const type = recorder.mimeType || mimeType || "audio/webm";
          resolve(new File(chunks, `recording.${extension}`, { type: type.split(";")[0] }));
        };
        recorder.stop();
      }),
  };
}
