//! Notices from background pipelines (finished, failed), printed while the user types.

use std::sync::{Arc, Mutex};

use rustyline::ExternalPrinter;

type Printer = Box<dyn ExternalPrinter + Send>;

/// Prints above the prompt without garbling the line being edited, when the terminal allows;
/// to stderr otherwise.
#[derive(Clone, Default)]
pub struct Notices {
    printer: Arc<Mutex<Option<Printer>>>,
}

impl Notices {
    /// Notices through rustyline's external printer.
    pub fn with_printer(printer: Printer) -> Self {
        Self { printer: Arc::new(Mutex::new(Some(printer))) }
    }

    pub fn print(&self, message: String) {
        if let Ok(mut slot) = self.printer.lock()
            && let Some(printer) = slot.as_mut()
            && printer.print(format!("{message}\n")).is_ok()
        {
            return;
        }
        errln!("{message}");
    }
}
